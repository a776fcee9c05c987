package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// embedded holds the in-process stand-ins: Kafka (kfake), Redis (miniredis)
// and the WeChat Pay simulator with freshly generated keys.
type embedded struct {
	kafka     *kfake.Cluster
	brokers   []string
	redis     *miniredis.Miniredis
	rdb       redis.UniversalClient
	redisAddr string
	sim       *wxsim.Server
	simSrv    *httptest.Server
	simURL    string
	client    *wxapi.Client
	mchID     string
}

// startEmbedded starts the stand-ins: Kafka on 127.0.0.1:kafkaPort (0: any)
// with the topics of the consumer options given.
func startEmbedded(kafkaPort int, topics consumer.Options, log *slog.Logger) (*embedded, error) {
	e := &embedded{}
	ok := false
	defer func() {
		if !ok {
			e.close()
		}
	}()
	var err error
	e.kafka, err = kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(8, topics.RequestTopic),
		kfake.SeedTopics(8, topics.ResultTopic, topics.DLQTopic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort("127.0.0.1", strconv.Itoa(kafkaPort)))
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka on 127.0.0.1:%d: %w", kafkaPort, err)
	}
	e.brokers = e.kafka.ListenAddrs()

	e.redis = miniredis.NewMiniRedis()
	if err := e.redis.Start(); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	e.redisAddr = e.redis.Addr()
	e.rdb = redis.NewClient(&redis.Options{Addr: e.redisAddr, ContextTimeoutEnabled: true})

	keys, err := wxsim.NewKeys()
	if err != nil {
		return nil, err
	}
	opts := keys.SimOptions()
	opts.AutoCreate = true // any contract the producer names exists and is effective
	e.sim = wxsim.New(opts)
	e.simSrv = httptest.NewUnstartedServer(e.sim)
	e.simSrv.Config.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	e.simSrv.Start()
	e.simURL = e.simSrv.URL
	e.client, err = wxapi.New(keys.ClientConfig(e.simURL))
	if err != nil {
		return nil, err
	}
	e.mchID = keys.MchID
	ok = true
	return e, nil
}

func (e *embedded) close() {
	if e.simSrv != nil {
		e.simSrv.Close()
	}
	if e.rdb != nil {
		_ = e.rdb.Close()
	}
	if e.redis != nil {
		e.redis.Close()
	}
	if e.kafka != nil {
		e.kafka.Close()
	}
}

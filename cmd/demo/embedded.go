package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/notify"
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

	// The notification endpoint (internal/notify, as cmd/notify runs it)
	// and WeChat Pay's side of it: a user terminates in WeChat, the
	// simulator notifies.
	notifier  *wxsim.Notifier
	notifyPub *notify.KafkaPublisher
	notifySrv *httptest.Server
	notifyURL string
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
		kfake.SeedTopics(8, topics.NotificationTopic),
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
	if err := e.startNotify(keys, topics.NotificationTopic); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// startNotify serves the notification endpoint, writing to topic, and makes
// the notifier that delivers to it on WeChat Pay's schedule, compressed.
func (e *embedded) startNotify(keys *wxsim.Keys, topic string) error {
	verify, err := notify.PublicKey(keys.PublicKeyID, &keys.PlatformKey.PublicKey)
	if err != nil {
		return err
	}
	e.notifyPub = notify.NewKafkaPublisher(e.brokers, topic, nil)
	h, err := notify.New(notify.Options{
		Merchants: []notify.Merchant{{MchID: keys.MchID, APIv3Key: keys.APIv3Key, Keys: verify}},
		Publisher: e.notifyPub, Metrics: notify.NewMetrics(prometheus.NewRegistry()), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	e.notifySrv = httptest.NewServer(h)
	e.notifyURL = e.notifySrv.URL + notify.PathSingle
	e.notifier, err = wxsim.NewNotifier(wxsim.NotifierOptions{PublicKeyID: keys.PublicKeyID, PlatformKey: keys.PlatformKey,
		APIv3Key: keys.APIv3Key, TimeScale: 0.01})
	return err
}

func (e *embedded) close() {
	if e.notifySrv != nil {
		e.notifySrv.Close()
	}
	if e.notifyPub != nil {
		_ = e.notifyPub.Close()
	}
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

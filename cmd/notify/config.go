package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/cli"
	"github.com/wxterm/wxterm/internal/connflags"
	"github.com/wxterm/wxterm/internal/notify"
)

// envPrefix: every flag -some-name is also read from WXTERM_SOME_NAME, as
// the consumer's are.
const envPrefix = "WXTERM"

// config is every setting; each is a flag, and WXTERM_<FLAG_NAME> fills it
// from the environment.
type config struct {
	brokers, topic string
	kafka          connflags.Kafka

	// The merchants: -merchants-file, or the one merchant of the flags
	// below (the consumer's names for the same settings).
	merchantsFile        string
	mchID                string
	pubKeyID, pubKeyFile string
	platformCertFiles    string
	apiV3KeyFile         string

	listenAddr, httpAddr string
	maxBody              int64
	maxSkew, publishWait time.Duration
	logLevel, logFormat  string
}

func newFlagSet(c *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("notify", flag.ContinueOnError)
	fs.SetOutput(stderr)

	connflags.RegisterBrokers(fs, &c.brokers)
	fs.StringVar(&c.topic, "notification-topic", event.TopicNotifications, "topic the verified notifications are written to (acks=all)")
	c.kafka.Register(fs)

	fs.StringVar(&c.merchantsFile, "merchants-file", "", "JSON file of several merchants, the format the consumer reads too (apiv3_key_file or apiv3_key_env, platform_cert_files); replaces -mchid and its key flags")
	fs.StringVar(&c.mchID, "mchid", "", "merchant id (商户号)")
	fs.StringVar(&c.pubKeyID, "wechatpay-public-key-id", "", "WeChat Pay public key id (PUB_KEY_ID_…)")
	fs.StringVar(&c.pubKeyFile, "wechatpay-public-key-file", "", "PEM file of the WeChat Pay public key")
	fs.StringVar(&c.platformCertFiles, "wechatpay-platform-cert-files", "", "PEM files of WeChat Pay platform certificates, comma-separated (with or instead of the public key)")
	fs.StringVar(&c.apiV3KeyFile, "apiv3-key-file", "", "file holding the merchant's 32-byte APIv3 key")

	fs.StringVar(&c.listenAddr, "listen-addr", ":8090", "address of the notification endpoint (POST "+notify.Path+"); expose only this one")
	fs.StringVar(&c.httpAddr, "http-addr", ":8080", "address of /healthz, /readyz and /metrics")
	fs.Int64Var(&c.maxBody, "max-body-bytes", notify.DefaultMaxBodyBytes, fmt.Sprintf("larger notification bodies are refused (413); at most %d, so that every event stays within the consumer's limit", notify.MaxBodyBytesLimit))
	fs.DurationVar(&c.maxSkew, "max-clock-skew", notify.DefaultMaxSkew, "a Wechatpay-Timestamp this far from now or further is refused; at most 5m (the SDK's bound)")
	fs.DurationVar(&c.publishWait, "publish-timeout", notify.DefaultPublishTimeout, "how long a notification waits for Kafka before it is answered 503 (WeChat Pay waits 5 s)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "json", "json or text")
	return fs
}

func parse(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := newFlagSet(c, stderr)
	if err := cli.Parse(fs, args, envPrefix); err != nil {
		return nil, err
	}
	if c.maxSkew <= 0 || c.maxSkew > notify.DefaultMaxSkew {
		return nil, fmt.Errorf("-max-clock-skew %s: want more than 0 and at most %s", c.maxSkew, notify.DefaultMaxSkew)
	}
	if c.maxBody <= 0 || c.maxBody > notify.MaxBodyBytesLimit {
		return nil, fmt.Errorf("-max-body-bytes %d: want more than 0 and at most %d (a larger body may make an event over the consumer's %d-byte limit)",
			c.maxBody, notify.MaxBodyBytesLimit, event.MaxNotificationBytes)
	}
	return c, nil
}

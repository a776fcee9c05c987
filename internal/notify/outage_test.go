package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/testenv"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// envKafkaCtl names the script that controls the test brokers
// (scripts/kafka.sh, exported by make services-up).
const envKafkaCtl = "WXTERM_TEST_KAFKA_CTL"

// outage stops and restarts Kafka: a real broker of the test's own, through
// the control script, or else a kfake cluster whose produce requests fail
// meanwhile.
type outage struct {
	brokers        []string
	halt, resume   func(t *testing.T)
	describeBroker string
}

func newOutage(t *testing.T) *outage {
	t.Helper()
	if ctl := os.Getenv(envKafkaCtl); testenv.RealKafka() && ctl != "" {
		// A broker of its own, in a run dir of its own: halting the shared
		// one would cut every other package's tests, which go test runs
		// alongside, off Kafka (a consumer test then timed out).
		env := append(os.Environ(), "WXTERM_RUN_DIR="+t.TempDir(), "KAFKA_PORT=", "KAFKA_CONTROLLER_PORT=")
		run := func(verb string) (string, error) {
			cmd := exec.Command(ctl, verb)
			cmd.Env = env
			out, err := cmd.Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					out = append(out, ee.Stderr...)
				}
				return "", fmt.Errorf("%s %s: %v\n%s", ctl, verb, err, out)
			}
			return strings.TrimSpace(string(out)), nil
		}
		addr, err := run("start")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := run("stop"); err != nil {
				t.Error(err)
			}
		})
		verb := func(v string) func(t *testing.T) {
			return func(t *testing.T) {
				t.Helper()
				if _, err := run(v); err != nil {
					t.Fatal(err)
				}
			}
		}
		return &outage{brokers: []string{addr}, halt: verb("halt"), resume: verb("resume"), describeBroker: "real broker of its own"}
	}
	if testenv.RealKafka() {
		t.Fatalf("%s is set but %s is not: cannot stop the real broker", testenv.EnvKafka, envKafkaCtl)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ListenFn(func(network, _ string) (net.Listener, error) {
		return net.Listen(network, "127.0.0.1:0")
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var down atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if down.Load() {
			return nil, errors.New("broker halted"), true // kfake closes the connection
		}
		return nil, nil, false
	})
	return &outage{
		brokers: c.ListenAddrs(), describeBroker: "kfake",
		halt:   func(*testing.T) { down.Store(true) },
		resume: func(*testing.T) { down.Store(false) },
	}
}

// While Kafka is stopped every notification is answered 5xx, so WeChat Pay
// keeps retrying; once it is back, the retries are accepted and every
// notification is in Kafka. Nothing is acknowledged that was not stored.
func TestKafkaStoppedWhileNotificationsArrive(t *testing.T) {
	o := newOutage(t)
	e := newEndpoint(t, o.brokers, 2*time.Second)
	// WeChat Pay's schedule at 1/100: 150 ms, 150 ms, 300 ms, 1.8 s, 6 s, 12 s, …
	n := notifier(t, func(opt *wxsim.NotifierOptions) { opt.TimeScale = 0.01 })

	const count = 8
	o.halt(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var g errgroup.Group
	deliveries := make([]wxsim.NotificationDelivery, count)
	for i := range count {
		code := fmt.Sprintf("K%d", i)
		body, err := n.NotificationBody("EV-"+code, event.NotifyPapayTerminate, contract(event.GlobalPapay, code))
		if err != nil {
			t.Fatal(err)
		}
		g.Go(func() error {
			var err error
			deliveries[i], err = n.Deliver(ctx, e.notifyURL(), body)
			return err
		})
	}
	// Resume once every notification has been refused at least once (each
	// refusal while Kafka is down is a publish failure).
	for testutil.ToFloat64(e.metrics.rejected.WithLabelValues(string(CausePublish))) < count {
		select {
		case <-ctx.Done():
			t.Fatalf("only %v publish refusals while Kafka (%s) was down; want %d", testutil.ToFloat64(e.metrics.rejected.WithLabelValues(string(CausePublish))), o.describeBroker, count)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got := testutil.ToFloat64(e.metrics.published.WithLabelValues(event.NotifyPapayTerminate)); got != 0 {
		t.Fatalf("published %v notifications while Kafka was down; want 0", got)
	}
	o.resume(t)
	if err := g.Wait(); err != nil {
		t.Fatalf("a notification was never accepted: %v", err)
	}
	seen := map[string]int{}
	for i, d := range deliveries {
		if d.Attempts < 2 || d.Statuses[0] < 500 {
			t.Errorf("notification %d: %+v; want a 5xx first and an accepted retry", i, d)
		}
	}
	// Each accepted notification is in Kafka. A write that timed out while
	// the broker was down may still land after it returns, so a notification
	// can appear more than once: the consumer dedupes by id.
	// (readUntil fails the test if one never comes.)
	e.readUntil(t, func(got []event.Notification) bool {
		clear(seen)
		for _, n := range got {
			seen[n.ID]++
		}
		return len(seen) == count
	})
	t.Logf("%s: deliveries %+v; messages by id %v", o.describeBroker, deliveries, seen)
}

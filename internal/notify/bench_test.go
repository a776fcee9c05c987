package notify

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/testenv"
)

// BenchmarkAccept measures one notification end to end, one at a time:
// HTTP, header checks, RSA verification, AES-GCM decryption and the
// acks=all Kafka write. Building and signing it (WeChat Pay's cost) is
// outside the timer.
func BenchmarkAccept(b *testing.B) {
	e := newEndpoint(b, testenv.Kafka(b), 0)
	n := notifier(b, nil)
	for i := range b.N {
		b.StopTimer()
		body, err := n.NotificationBody(fmt.Sprintf("EV-%d", i), event.NotifyPapayTerminate, contract(event.GlobalPapay, fmt.Sprintf("B%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		h, err := n.NotificationHeaders(body)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if status, a := post(b, e.notifyURL(), body, h); status != http.StatusOK {
			b.Fatalf("answered %d %+v", status, a)
		}
	}
}

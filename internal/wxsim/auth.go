package wxsim

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

const authScheme = "WECHATPAY2-SHA256-RSA2048"

// verify checks the request's Authorization header as WeChat does: the
// message is method, request URI, timestamp, nonce and body, each followed
// by a newline, signed by the merchant key whose serial is serial_no.
func (s *Server) verify(r *http.Request, body []byte) error {
	if s.verifier == nil {
		return nil
	}
	scheme, params, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme != authScheme {
		return errors.New("authorization scheme must be " + authScheme)
	}
	p := make(map[string]string, 5)
	for kv := range strings.SplitSeq(params, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		p[k] = strings.Trim(v, `"`)
	}
	if p["mchid"] != s.opts.MchID {
		return errors.New("mchid does not match the certificate")
	}
	ts, err := strconv.ParseInt(p["timestamp"], 10, 64)
	if err != nil {
		return errors.New("invalid timestamp")
	}
	if d := time.Since(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("timestamp expired")
	}
	msg := r.Method + "\n" + r.RequestURI + "\n" + p["timestamp"] + "\n" + p["nonce_str"] + "\n" + string(body) + "\n"
	if err := s.verifier.Verify(r.Context(), p["serial_no"], msg, p["signature"]); err != nil {
		return errors.New("signature does not match serial_no's key")
	}
	return nil
}

// answer is a response to write; a nil body is sent as none (204).
type answer struct {
	status int
	body   []byte
}

type apiError struct {
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Detail  *errorDetail `json:"detail,omitempty"`
}

type errorDetail struct {
	Field    string `json:"field"`
	Value    string `json:"value,omitempty"`
	Issue    string `json:"issue"`
	Location string `json:"location"`
}

func errorAnswer(status int, code, message string, detail *errorDetail) answer {
	b, _ := json.Marshal(apiError{code, message, detail})
	return answer{status, b}
}

func paramError(field, location, value, issue string) answer {
	return errorAnswer(http.StatusBadRequest, "PARAM_ERROR", fmt.Sprintf("%s: %s", field, issue),
		&errorDetail{Field: field, Value: value, Issue: issue, Location: location})
}

// write sends a, signed as WeChat signs answers (one RSA signature over
// timestamp, nonce and body, each followed by a newline); corrupt flips a
// bit of the signature.
func (s *Server) write(w http.ResponseWriter, a answer, corrupt bool) {
	serial, key := s.opts.PublicKeyID, s.opts.PlatformPrivateKey
	if Signing(s.signing.Load()) == SignCertificate {
		serial, key = s.opts.CertificateSerial, s.opts.CertificateKey
	}
	s.writeSigned(w, a, corrupt, serial, key)
}

// writeSigned sends a signed with key, naming serial; a nil key sends it
// unsigned.
func (s *Server) writeSigned(w http.ResponseWriter, a answer, corrupt bool, serial string, key *rsa.PrivateKey) {
	h := w.Header()
	h.Set("Request-ID", fmt.Sprintf("sim-%08x", s.requestID.Add(1)))
	if a.body != nil {
		h.Set("Content-Type", "application/json")
	}
	if key != nil {
		ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), rand.Text()
		sig, err := utils.SignSHA256WithRSA(ts+"\n"+nonce+"\n"+string(a.body)+"\n", key)
		if err != nil {
			http.Error(w, "sign answer: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if corrupt {
			b, _ := base64.StdEncoding.DecodeString(sig)
			b[len(b)/2] ^= 0x01
			sig = base64.StdEncoding.EncodeToString(b)
		}
		h.Set("Wechatpay-Serial", serial)
		h.Set("Wechatpay-Timestamp", ts)
		h.Set("Wechatpay-Nonce", nonce)
		h.Set("Wechatpay-Signature", sig)
		h.Set("Wechatpay-Signature-Type", authScheme)
	}
	w.WriteHeader(a.status)
	w.Write(a.body)
}

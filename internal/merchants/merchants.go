// Package merchants reads the WeChat Pay merchants a command acts for: the
// -merchants-file JSON format that cmd/consumer, cmd/notify and cmd/status
// share, or the one merchant of the -mchid flags, and builds their wxapi
// clients. Secrets (private keys, the APIv3 key) are never echoed in an
// error: only the file or variable they came from is named.
package merchants

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// File is the -merchants-file format.
type File struct {
	// Default acts for intents that name no mchid; it may be empty when
	// the file lists one merchant (that one is the default).
	Default   string  `json:"default"`
	Merchants []Entry `json:"merchants"`
}

// Entry is one merchant. Each command reads the fields it needs and
// accepts the others, so one file serves them all.
type Entry struct {
	MchID          string `json:"mchid"`
	CertSerial     string `json:"cert_serial"`      // signs requests (consumer, status)
	PrivateKeyFile string `json:"private_key_file"` // signs requests (consumer, status)
	// Verification is public_key (the default when empty), certificates
	// or both (wxapi.ParseVerification).
	Verification  string `json:"verification"`
	PublicKeyID   string `json:"public_key_id"`
	PublicKeyFile string `json:"public_key_file"`
	// The APIv3 key: from a file, or from the environment variable named
	// (a Kubernetes Secret's env); not both. Needed by the certificates and
	// both modes, and by cmd/notify to decrypt notifications.
	APIv3KeyFile string `json:"apiv3_key_file"`
	APIv3KeyEnv  string `json:"apiv3_key_env"`
	// PlatformCertFiles are platform certificates read from files:
	// cmd/notify's (the consumer downloads them with the APIv3 key).
	PlatformCertFiles []string `json:"platform_cert_files"`
	SubMchIDs         []string `json:"sub_mchids"` // the consumer's allow-list; empty: any

	apiV3Key string // from the single-merchant flags' environment variable
}

// ReadFile reads and checks a merchants file: no unknown fields, at least
// one merchant, each mchid set and listed once. The default is the one
// merchant when the file lists one and names none.
func ReadFile(path string) (File, error) {
	var f File
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("-merchants-file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("-merchants-file %s: %w", path, err)
	}
	if len(f.Merchants) == 0 {
		return f, fmt.Errorf("-merchants-file %s lists no merchants", path)
	}
	seen := make(map[string]bool, len(f.Merchants))
	for _, m := range f.Merchants {
		if m.MchID == "" || seen[m.MchID] {
			return f, fmt.Errorf("-merchants-file %s: merchant %q is empty or listed twice", path, m.MchID)
		}
		seen[m.MchID] = true
	}
	if f.Default == "" && len(f.Merchants) == 1 {
		f.Default = f.Merchants[0].MchID
	}
	return f, nil
}

// apiV3KeyLen: the APIv3 key is an AES-256 key of 32 bytes (see wxapi).
const apiV3KeyLen = 32

// APIv3Key returns the merchant's APIv3 key, "" if none is configured. The
// error names where the key came from, never the key.
func (e Entry) APIv3Key() (string, error) {
	var key, from string
	switch {
	case e.APIv3KeyFile != "" && (e.APIv3KeyEnv != "" || e.apiV3Key != ""):
		return "", errors.New("APIv3 key given both in a file and in the environment: keep one")
	case e.APIv3KeyFile != "":
		b, err := os.ReadFile(e.APIv3KeyFile)
		if err != nil {
			return "", fmt.Errorf("APIv3 key: %w", err)
		}
		key, from = string(b), e.APIv3KeyFile
	case e.APIv3KeyEnv != "":
		v, ok := os.LookupEnv(e.APIv3KeyEnv)
		if !ok {
			return "", fmt.Errorf("APIv3 key: $%s is not set", e.APIv3KeyEnv)
		}
		key, from = v, "$"+e.APIv3KeyEnv
	case e.apiV3Key != "":
		key, from = e.apiV3Key, "-apiv3-key"
	default:
		return "", nil
	}
	if key = strings.TrimSpace(key); len(key) != apiV3KeyLen {
		return "", fmt.Errorf("APIv3 key in %s is not %d bytes", from, apiV3KeyLen)
	}
	return key, nil
}

// PublicKey loads the WeChat Pay public key, nil if no file is named.
func (e Entry) PublicKey() (*rsa.PublicKey, error) {
	if e.PublicKeyFile == "" {
		return nil, nil
	}
	pub, err := utils.LoadPublicKeyWithPath(e.PublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot load a public key from %s", e.PublicKeyFile)
	}
	return pub, nil
}

// Config returns the merchant's part of a wxapi.Config, its keys loaded:
// the caller adds the hosts and timeouts.
func (e Entry) Config() (wxapi.Config, error) {
	cfg := wxapi.Config{MchID: e.MchID, CertSerial: e.CertSerial, PublicKeyID: e.PublicKeyID}
	var err error
	if e.Verification != "" {
		if cfg.Verification, err = wxapi.ParseVerification(e.Verification); err != nil {
			return cfg, err
		}
	}
	if cfg.PrivateKey, err = utils.LoadPrivateKeyWithPath(e.PrivateKeyFile); err != nil {
		return cfg, fmt.Errorf("cannot load a private key from %s", e.PrivateKeyFile) // never echo the key
	}
	if cfg.PublicKey, err = e.PublicKey(); err != nil {
		return cfg, err
	}
	if cfg.APIv3Key, err = e.APIv3Key(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

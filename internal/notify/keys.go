package notify

import (
	"context"
	"crypto/rsa"
	"errors"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
)

// Keys verify WeChat Pay's signatures on one merchant's notifications. A
// notification names its key in Wechatpay-Serial: a WeChat Pay public key id
// (PUB_KEY_ID_…) or a platform certificate serial (webhook/v3/*.md in
// wechatpay-im/website, "平台证书序列号/平台公钥ID").
//
// The SDK's verifiers answer any serial they do not hold with an error
// indistinguishable from a bad signature; Knows lets the endpoint tell the
// two apart, so an operator sees "serial" (a key rotated, a certificate not
// yet downloaded) rather than "signature" (a forgery).
type Keys interface {
	auth.Verifier
	// Knows reports whether serial names a key or certificate these Keys
	// hold.
	Knows(ctx context.Context, serial string) bool
}

// PublicKey returns the Keys of a merchant verified by its WeChat Pay public
// key (the mode of option.WithWechatPayPublicKeyAuthCipher).
func PublicKey(id string, key *rsa.PublicKey) (Keys, error) {
	return NewKeys(id, key, nil)
}

// NewKeys returns Keys that accept a signature by the public key (when id
// and key are set), by a platform certificate of certs (when certs is not
// nil), or by either: the SDK's combined verifier, for a merchant migrating
// from certificates to the public key.
func NewKeys(id string, key *rsa.PublicKey, certs core.CertificateGetter) (Keys, error) {
	hasKey := id != "" && key != nil
	switch {
	case (id != "") != (key != nil):
		return nil, errors.New("notify: a WeChat Pay public key needs both its id and the key")
	case hasKey && certs != nil:
		return sdkKeys{Verifier: verifiers.NewSHA256WithRSACombinedVerifier(certs, id, *key), keyID: id, certs: certs}, nil
	case hasKey:
		return sdkKeys{Verifier: verifiers.NewSHA256WithRSAPubkeyVerifier(id, *key), keyID: id}, nil
	case certs != nil:
		return sdkKeys{Verifier: verifiers.NewSHA256WithRSAVerifier(certs), certs: certs}, nil
	}
	return nil, errors.New("notify: no WeChat Pay public key and no platform certificates")
}

// sdkKeys are the SDK's verifiers with the serials they hold.
type sdkKeys struct {
	auth.Verifier
	keyID string
	certs core.CertificateGetter
}

func (k sdkKeys) Knows(ctx context.Context, serial string) bool {
	if serial == "" {
		return false
	}
	if serial == k.keyID {
		return true
	}
	if k.certs == nil {
		return false
	}
	_, ok := k.certs.Get(ctx, serial)
	return ok
}

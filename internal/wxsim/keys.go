package wxsim

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// Keys are a merchant's and a WeChat Pay RSA-2048 key pair with their ids,
// for tests and the local demo.
type Keys struct {
	MchID              string
	MerchantCertSerial string
	MerchantKey        *rsa.PrivateKey // signs requests
	PublicKeyID        string
	PlatformKey        *rsa.PrivateKey // signs answers
}

// NewKeys generates fresh Keys.
func NewKeys() (*Keys, error) {
	merchant, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("wxsim: generate merchant key: %w", err)
	}
	platform, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("wxsim: generate platform key: %w", err)
	}
	serial := make([]byte, 20)
	rand.Read(serial)
	return &Keys{
		MchID:              "1900000109",
		MerchantCertSerial: strings.ToUpper(fmt.Sprintf("%x", serial)),
		MerchantKey:        merchant,
		PublicKeyID:        "PUB_KEY_ID_" + fmt.Sprintf("%x", serial[:12]),
		PlatformKey:        platform,
	}, nil
}

// SimOptions returns Options that verify requests signed with k's merchant
// key and sign answers with k's platform key.
func (k *Keys) SimOptions() Options {
	return Options{
		MchID: k.MchID, MerchantCertSerial: k.MerchantCertSerial, MerchantPublicKey: &k.MerchantKey.PublicKey,
		PublicKeyID: k.PublicKeyID, PlatformPrivateKey: k.PlatformKey,
	}
}

// ClientConfig returns a wxapi.Config that calls the simulator at baseURL
// for every host (main, backup and global), so nothing reaches WeChat.
func (k *Keys) ClientConfig(baseURL string) wxapi.Config {
	return wxapi.Config{
		MchID: k.MchID, CertSerial: k.MerchantCertSerial, PrivateKey: k.MerchantKey,
		PublicKeyID: k.PublicKeyID, PublicKey: &k.PlatformKey.PublicKey,
		BaseURL: baseURL, BackupURL: baseURL, GlobalBaseURL: baseURL,
	}
}

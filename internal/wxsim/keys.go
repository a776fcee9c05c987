package wxsim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// Keys are a merchant's and a WeChat Pay RSA-2048 key pair with their ids,
// for tests and the local demo.
type Keys struct {
	MchID              string
	MerchantCertSerial string
	MerchantKey        *rsa.PrivateKey // signs requests
	PublicKeyID        string
	PlatformKey        *rsa.PrivateKey // signs answers in public-key mode

	// The platform certificate, its key and serial: they sign answers in
	// certificate mode and the certificate download. APIv3Key encrypts the
	// download. Keys read from a directory without them lack them.
	CertificateKey    *rsa.PrivateKey
	Certificate       *x509.Certificate
	CertificateSerial string
	APIv3Key          string
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
	certKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("wxsim: generate platform certificate key: %w", err)
	}
	cert, certSerial, err := newPlatformCertificate(certKey)
	if err != nil {
		return nil, err
	}
	serial := make([]byte, 20)
	rand.Read(serial)
	return &Keys{
		MchID:              "1900000109",
		MerchantCertSerial: strings.ToUpper(fmt.Sprintf("%x", serial)),
		MerchantKey:        merchant,
		PublicKeyID:        "PUB_KEY_ID_" + fmt.Sprintf("%x", serial[:12]),
		PlatformKey:        platform,
		CertificateKey:     certKey,
		Certificate:        cert,
		CertificateSerial:  certSerial,
		APIv3Key:           newAPIv3Key(),
	}, nil
}

// WithPlatformKeyBits returns a copy of k whose WeChat Pay (platform) key is
// a fresh RSA key of bits bits; the merchant key and ids are k's. The
// benchmarks use it to make the simulator's own signing cheaper where its
// CPU, which WeChat Pay spends on its own machines, would compete with the
// consumer's.
func (k *Keys) WithPlatformKeyBits(bits int) (*Keys, error) {
	platform, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("wxsim: generate platform key: %w", err)
	}
	c := *k
	c.PlatformKey = platform
	return &c, nil
}

// SimOptions returns Options that verify requests signed with k's merchant
// key and sign answers with k's platform key.
func (k *Keys) SimOptions() Options {
	return Options{
		MchID: k.MchID, MerchantCertSerial: k.MerchantCertSerial, MerchantPublicKey: &k.MerchantKey.PublicKey,
		PublicKeyID: k.PublicKeyID, PlatformPrivateKey: k.PlatformKey,
		Certificate: k.Certificate, CertificateKey: k.CertificateKey, CertificateSerial: k.CertificateSerial, APIv3Key: k.APIv3Key,
	}
}

// ClientConfig returns a wxapi.Config that calls the simulator at baseURL
// for every host (main, backup and global), so nothing reaches WeChat, and
// verifies answers with the WeChat Pay public key. For the other modes set
// Verification: it carries the APIv3 key too.
func (k *Keys) ClientConfig(baseURL string) wxapi.Config {
	return wxapi.Config{
		MchID: k.MchID, CertSerial: k.MerchantCertSerial, PrivateKey: k.MerchantKey,
		PublicKeyID: k.PublicKeyID, PublicKey: &k.PlatformKey.PublicKey, APIv3Key: k.APIv3Key,
		BaseURL: baseURL, BackupURL: baseURL, GlobalBaseURL: baseURL,
	}
}

// Files a Keys is saved as by WriteFiles: what a consumer process needs
// (merchant private key, WeChat Pay public key, ids) and what the simulator
// needs (platform private key).
const (
	FileMerchantKey = "apiclient_key.pem" // merchant private key (PKCS#8)
	FilePlatformKey = "platform_key.pem"  // the simulator's signing key (PKCS#8)
	FilePublicKey   = "wechatpay_pub.pem" // WeChat Pay public key (PKIX)
	FileIdentity    = "identity.env"      // MCHID, MCH_CERT_SERIAL, PUBLIC_KEY_ID
	// Optional: the platform certificate, its key and the APIv3 key (a
	// directory written before they existed lacks them).
	FileCertificate    = "platform_cert.pem"     // platform certificate (X.509)
	FileCertificateKey = "platform_cert_key.pem" // its key: the simulator's (PKCS#8)
	FileAPIv3Key       = "apiv3_key"             // the merchant's APIv3 key, 32 characters
)

// WriteFiles saves k under dir (created 0700), so that separate processes
// (a simulator and consumers) share one set of keys.
func (k *Keys) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("wxsim: keys: %w", err)
	}
	pem8 := func(key *rsa.PrivateKey) ([]byte, error) {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), err
	}
	mk, err := pem8(k.MerchantKey)
	if err != nil {
		return err
	}
	pk, err := pem8(k.PlatformKey)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PlatformKey.PublicKey)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		FileMerchantKey: mk,
		FilePlatformKey: pk,
		FilePublicKey:   pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		FileIdentity:    fmt.Appendf(nil, "MCHID=%s\nMCH_CERT_SERIAL=%s\nPUBLIC_KEY_ID=%s\n", k.MchID, k.MerchantCertSerial, k.PublicKeyID),
	}
	if k.Certificate != nil && k.CertificateKey != nil {
		ck, err := pem8(k.CertificateKey)
		if err != nil {
			return err
		}
		files[FileCertificateKey] = ck
		files[FileCertificate] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Certificate.Raw})
	}
	if k.APIv3Key != "" {
		files[FileAPIv3Key] = []byte(k.APIv3Key)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return fmt.Errorf("wxsim: keys: %w", err)
		}
	}
	return nil
}

// ReadKeys loads the Keys WriteFiles saved under dir.
func ReadKeys(dir string) (*Keys, error) {
	read := func(name string) (*rsa.PrivateKey, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: no PEM block", name)
		}
		key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		rk, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: not an RSA key", name)
		}
		return rk, nil
	}
	k := &Keys{}
	var err error
	if k.MerchantKey, err = read(FileMerchantKey); err != nil {
		return nil, fmt.Errorf("wxsim: keys: %w", err)
	}
	if k.PlatformKey, err = read(FilePlatformKey); err != nil {
		return nil, fmt.Errorf("wxsim: keys: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileIdentity))
	if err != nil {
		return nil, fmt.Errorf("wxsim: keys: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, _ := strings.Cut(line, "=")
		switch name {
		case "MCHID":
			k.MchID = value
		case "MCH_CERT_SERIAL":
			k.MerchantCertSerial = value
		case "PUBLIC_KEY_ID":
			k.PublicKeyID = value
		}
	}
	if err := k.readCertificate(dir, read); err != nil {
		return nil, fmt.Errorf("wxsim: keys: %w", err)
	}
	if k.MchID == "" || k.MerchantCertSerial == "" || k.PublicKeyID == "" {
		return nil, fmt.Errorf("wxsim: keys: %s lacks MCHID, MCH_CERT_SERIAL or PUBLIC_KEY_ID", FileIdentity)
	}
	return k, nil
}

// readCertificate loads the optional certificate files; absent ones leave
// the fields empty.
func (k *Keys) readCertificate(dir string, read func(string) (*rsa.PrivateKey, error)) error {
	if b, err := os.ReadFile(filepath.Join(dir, FileAPIv3Key)); err == nil {
		k.APIv3Key = strings.TrimSpace(string(b))
	}
	b, err := os.ReadFile(filepath.Join(dir, FileCertificate))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if k.Certificate, err = utils.LoadCertificate(string(b)); err != nil {
		return fmt.Errorf("%s: %w", FileCertificate, err)
	}
	k.CertificateSerial = utils.GetCertificateSerialNumber(*k.Certificate)
	k.CertificateKey, err = read(FileCertificateKey)
	return err
}

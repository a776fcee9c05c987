package wxsim

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

// Signing is the key the simulator signs answers with.
type Signing int

const (
	// SignPublicKey signs with the WeChat Pay public key's private half,
	// Wechatpay-Serial being its id (PUB_KEY_ID_…).
	SignPublicKey Signing = iota
	// SignCertificate signs with the platform certificate's key,
	// Wechatpay-Serial being the certificate's serial.
	SignCertificate
)

// The download's fixed values: openapi/v3/certificates.md
// (wechatpay-im/website): encrypt_certificate.algorithm and its
// associated_data "固定为certificate".
const (
	certAlgorithm      = "AEAD_AES_256_GCM"
	certAssociatedData = "certificate"
)

type encryptedCertificate struct {
	Algorithm      string `json:"algorithm"`
	Nonce          string `json:"nonce"`
	AssociatedData string `json:"associated_data"`
	Ciphertext     string `json:"ciphertext"`
}

type certificateEntry struct {
	SerialNo           string               `json:"serial_no"`
	EffectiveTime      string               `json:"effective_time"`
	ExpireTime         string               `json:"expire_time"`
	EncryptCertificate encryptedCertificate `json:"encrypt_certificate"`
}

// certificates serves GET /v3/certificates: the platform certificate,
// encrypted with the merchant's APIv3 key, the answer signed with the
// certificate's key.
func (s *Server) certificates(w http.ResponseWriter, r *http.Request) {
	o := s.opts
	if o.Certificate == nil || o.CertificateKey == nil || o.APIv3Key == "" {
		s.write(w, errorAnswer(http.StatusNotFound, "NOT_FOUND", "no platform certificate", nil), false)
		return
	}
	if err := s.verify(r, nil); err != nil {
		s.write(w, errorAnswer(http.StatusUnauthorized, "SIGN_ERROR", "signature verification failed: "+err.Error(), nil), false)
		return
	}
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.Certificate.Raw})
	enc, err := encryptAEAD(o.APIv3Key, certAssociatedData, pemCert)
	if err != nil {
		http.Error(w, "encrypt certificate: "+err.Error(), http.StatusInternalServerError)
		return
	}
	body, err := json.Marshal(struct {
		Data []certificateEntry `json:"data"`
	}{[]certificateEntry{{
		SerialNo: o.CertificateSerial, EffectiveTime: timestamp(o.Certificate.NotBefore), ExpireTime: timestamp(o.Certificate.NotAfter),
		EncryptCertificate: enc,
	}}})
	if err != nil {
		panic(err) // strings only
	}
	s.writeSigned(w, answer{http.StatusOK, body}, false, o.CertificateSerial, o.CertificateKey)
}

// encryptAEAD encrypts plaintext with AES-256-GCM under key (the APIv3
// key, 32 bytes) and a fresh 12-character nonce, as WeChat Pay encrypts
// certificates and notifications; the SDK's utils.DecryptAES256GCM reads it.
func encryptAEAD(key, associatedData string, plaintext []byte) (encryptedCertificate, error) {
	block, err := aes.NewCipher([]byte(key))
	if err != nil {
		return encryptedCertificate{}, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return encryptedCertificate{}, err
	}
	nonce := rand.Text()[:gcm.NonceSize()]
	sealed := gcm.Seal(nil, []byte(nonce), plaintext, []byte(associatedData))
	return encryptedCertificate{Algorithm: certAlgorithm, Nonce: nonce, AssociatedData: associatedData,
		Ciphertext: base64.StdEncoding.EncodeToString(sealed)}, nil
}

// newPlatformCertificate returns a self-signed certificate for key, valid
// from an hour ago for five years, and its serial as the SDK writes it.
func newPlatformCertificate(key *rsa.PrivateKey) (*x509.Certificate, string, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: n,
		Subject:      pkix.Name{CommonName: "Tenpay.com Root CA (wxsim)", Organization: []string{"wxsim"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", fmt.Errorf("wxsim: platform certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, "", fmt.Errorf("wxsim: platform certificate: %w", err)
	}
	return cert, utils.GetCertificateSerialNumber(*cert), nil
}

// newAPIv3Key returns a random 32-character APIv3 key.
func newAPIv3Key() string {
	b := make([]byte, 24)
	io.ReadFull(rand.Reader, b)
	return base64.RawURLEncoding.EncodeToString(b) // 32 characters
}

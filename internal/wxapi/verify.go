package wxapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/consts"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
)

// Verification is how a merchant verifies WeChat Pay's answers.
type Verification int

const (
	// VerifyPublicKey verifies with the WeChat Pay public key
	// (Config.PublicKeyID, Config.PublicKey).
	VerifyPublicKey Verification = iota
	// VerifyCertificates verifies with the platform certificates, which the
	// SDK downloads from GET /v3/certificates, decrypts with
	// Config.APIv3Key, and downloads again every Config.CertificateRefresh.
	VerifyCertificates
	// VerifyBoth accepts answers signed either way, while a merchant
	// migrates from certificates to the public key: the SDK's combined
	// verifier uses the public key for answers whose Wechatpay-Serial is
	// its id, the certificates for the others.
	VerifyBoth
)

var verificationNames = [...]string{VerifyPublicKey: "public_key", VerifyCertificates: "certificates", VerifyBoth: "both"}

func (v Verification) String() string {
	if v < 0 || int(v) >= len(verificationNames) {
		return "verification(" + strconv.Itoa(int(v)) + ")"
	}
	return verificationNames[v]
}

// ParseVerification reads a Verification by name: public_key,
// certificates or both.
func ParseVerification(s string) (Verification, error) {
	for v, name := range verificationNames {
		if s == name {
			return Verification(v), nil
		}
	}
	return 0, fmt.Errorf("%w: verification %q is not one of public_key, certificates, both", ErrConfig, s)
}

func (v Verification) usesPublicKey() bool    { return v == VerifyPublicKey || v == VerifyBoth }
func (v Verification) usesCertificates() bool { return v == VerifyCertificates || v == VerifyBoth }

// apiV3KeyLen: the APIv3 key is an AES-256 key of 32 bytes (the PHP SDK's
// webhook processor, wechatpay-im/website webhook/v3/ENTRUST.TERMINATE.md).
const apiV3KeyLen = 32

// certificates downloads and refreshes one merchant's platform
// certificates with a downloader manager of its own.
//
// Not option.WithWechatPayAutoAuthCipher: that registers the merchant with
// the process-wide downloader.MgrInstance(), keyed by mchid alone (a second
// Client for the same mchid, e.g. against another host, silently reuses the
// first one's certificates), and its downloader calls
// consts.WechatPayAPIServer over a default HTTP client, so it can be
// pointed at neither Config.BaseURL nor Config.HTTPClient.
type certificates struct {
	mgr   *downloader.CertificateDownloaderMgr
	mchID string
}

// startCertificates downloads cfg's platform certificates once (an error if
// that fails: a wrong APIv3 key, or no answer) and starts refreshing them;
// it returns nil for VerifyPublicKey.
func startCertificates(ctx context.Context, cfg Config) (*certificates, error) {
	if !cfg.Verification.usesCertificates() {
		return nil, nil
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: base url: %v", ErrConfig, err)
	}
	hc := *cfg.HTTPClient
	hc.Transport = rehost{next: orDefault(hc.Transport), base: base}
	// The first download is not verified (NullValidator): the answer is
	// trusted because it decrypts under the APIv3 key, which only the
	// merchant and WeChat Pay hold. The SDK then verifies later downloads
	// with the certificates it holds.
	dl, err := core.NewClientWithDialSettings(ctx, &core.DialSettings{
		HTTPClient: &hc,
		Signer:     &signers.SHA256WithRSASigner{MchID: cfg.MchID, CertificateSerialNo: cfg.CertSerial, PrivateKey: cfg.PrivateKey},
		Validator:  &validators.NullValidator{},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: certificate downloader: %v", ErrConfig, err)
	}
	mgr := downloader.NewCertificateDownloaderMgrWithInterval(ctx, cfg.CertificateRefresh)
	if err := mgr.RegisterDownloaderWithClient(ctx, dl, cfg.MchID, cfg.APIv3Key); err != nil {
		mgr.Stop()
		return nil, fmt.Errorf("%w: download platform certificates: %v", ErrConfig, err)
	}
	return &certificates{mgr: mgr, mchID: cfg.MchID}, nil
}

// stop ends the refreshing; a nil c is a no-op.
func (c *certificates) stop() {
	if c != nil {
		c.mgr.Stop()
	}
}

// verifier returns the verifier of cfg's mode.
func verifier(cfg Config, certs *certificates) auth.Verifier {
	switch cfg.Verification {
	case VerifyCertificates:
		return verifiers.NewSHA256WithRSAVerifier(certs.mgr.GetCertificateVisitor(certs.mchID))
	case VerifyBoth:
		return verifiers.NewSHA256WithRSACombinedVerifier(certs.mgr.GetCertificateVisitor(certs.mchID), cfg.PublicKeyID, *cfg.PublicKey)
	default:
		return verifiers.NewSHA256WithRSAPubkeyVerifier(cfg.PublicKeyID, *cfg.PublicKey)
	}
}

func orDefault(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		return http.DefaultTransport
	}
	return rt
}

// rehost sends the SDK downloader's requests, which name
// consts.WechatPayAPIServer, to base instead (the request signature covers
// the path, not the host).
type rehost struct {
	next http.RoundTripper
	base *url.URL
}

var sdkHost = strings.TrimPrefix(consts.WechatPayAPIServer, "https://")

func (t rehost) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != sdkHost || t.base.Host == sdkHost {
		return t.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.base.Scheme, t.base.Host, ""
	return t.next.RoundTrip(r)
}

package wxapi

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// SDK downloads from GET /v3/certificates on BaseURL and GET
	// /v3/global/certificates on GlobalBaseURL (whichever answer), decrypts
	// with Config.APIv3Key, and downloads again every
	// Config.CertificateRefresh, or at once (at most once a minute) when an
	// answer names a serial none of them has: a rotation.
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
// certificates, from each host that serves them to the merchant, each with
// a downloader manager of its own.
//
// Not option.WithWechatPayAutoAuthCipher: that registers the merchant with
// the process-wide downloader.MgrInstance(), keyed by mchid alone (a second
// Client for the same mchid, e.g. against another host, silently reuses the
// first one's certificates), and its downloader calls
// consts.WechatPayAPIServer over a default HTTP client, so it can be
// pointed at neither Config.BaseURL nor Config.HTTPClient.
type certificates struct {
	cfg     Config
	mu      sync.RWMutex
	sources []*downloader.CertificateDownloaderMgr // by certificateSources; nil where the download failed
	last    atomic.Int64                           // unix nanoseconds of the last download on an unknown serial
}

// Where platform certificates are downloaded: mainland merchants from GET
// /v3/certificates on the mainland host (openapi/v3/certificates.md),
// cross-border ones from GET /v3/global/certificates on the global host
// (wechatpay-im/website openapi/v3/global/certificates.md, "声明接入点
// https://apihk.mch.weixin.qq.com/").
const (
	certificatesPath       = "/v3/certificates"
	globalCertificatesPath = "/v3/global/certificates"
)

// certificateSources are the hosts and paths cfg's certificates come from.
func certificateSources(cfg Config) [][2]string {
	return [][2]string{{cfg.BaseURL, certificatesPath}, {cfg.GlobalBaseURL, globalCertificatesPath}}
}

// rotationDownloadEvery bounds the downloads an unknown serial triggers
// (see certificates.rotated): at most one a minute per merchant.
const rotationDownloadEvery = time.Minute

// startCertificates downloads cfg's platform certificates once from the
// mainland host and from the global host, and starts refreshing them from
// each host that answered: a merchant may use only the mainland APIs, only
// global papay (the mainland host does not know it), or both. It is an
// error if neither answered (a wrong APIv3 key, or no answer); it returns
// nil for VerifyPublicKey.
func startCertificates(ctx context.Context, cfg Config) (*certificates, error) {
	if !cfg.Verification.usesCertificates() {
		return nil, nil
	}
	c := &certificates{cfg: cfg}
	if errs := c.download(ctx); len(errs) == len(certificateSources(cfg)) {
		return nil, fmt.Errorf("%w: download platform certificates: %w", ErrConfig, errors.Join(errs...))
	}
	return c, nil
}

// download downloads the certificates from every source with a new
// downloader each, replacing the sources that answered, and returns the
// failures. A new downloader trusts its first answer (as the first
// download does): after a rotation WeChat Pay may sign the download with
// the new certificate, which the old downloader's validator would refuse.
func (c *certificates) download(ctx context.Context) []error {
	var errs []error
	srcs := certificateSources(c.cfg)
	fresh := make([]*downloader.CertificateDownloaderMgr, len(srcs))
	for i, src := range srcs {
		mgr, err := downloadFrom(ctx, c.cfg, src[0], src[1])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s%s: %w", src[0], src[1], err))
			continue
		}
		fresh[i] = mgr
	}
	c.mu.Lock()
	if c.sources == nil {
		c.sources = make([]*downloader.CertificateDownloaderMgr, len(srcs))
	}
	for i, mgr := range fresh {
		if mgr != nil {
			if c.sources[i] != nil {
				c.sources[i].Stop()
			}
			c.sources[i] = mgr
		}
	}
	c.mu.Unlock()
	return errs
}

// downloadFrom registers a downloader manager fetching path on base.
func downloadFrom(ctx context.Context, cfg Config, base, path string) (*downloader.CertificateDownloaderMgr, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("%w: base url: %v", ErrConfig, err)
	}
	hc := *cfg.HTTPClient
	hc.Transport = rehost{next: orDefault(hc.Transport), base: u, path: path}
	// The downloads are not verified (NullValidator): the answer is
	// trusted because it decrypts under the APIv3 key, which only the
	// merchant and WeChat Pay hold.
	dl, err := core.NewClientWithDialSettings(ctx, &core.DialSettings{
		HTTPClient: &hc,
		Signer:     pathSigner{&signers.SHA256WithRSASigner{MchID: cfg.MchID, CertificateSerialNo: cfg.CertSerial, PrivateKey: cfg.PrivateKey}, path},
		Validator:  &validators.NullValidator{},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: certificate downloader: %v", ErrConfig, err)
	}
	// The manager's scheduled downloads outlive ctx (a call's, after a
	// rotation): they run with its values, not its end.
	mgr := downloader.NewCertificateDownloaderMgrWithInterval(context.WithoutCancel(ctx), cfg.CertificateRefresh)
	if err := mgr.RegisterDownloaderWithClient(ctx, dl, cfg.MchID, cfg.APIv3Key); err != nil {
		mgr.Stop()
		return nil, err
	}
	return mgr, nil
}

// stop ends the refreshing; a nil c is a no-op.
func (c *certificates) stop() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, mgr := range c.sources {
		if mgr != nil {
			mgr.Stop()
		}
	}
}

// Get, GetAll and GetNewestSerial make c a core.CertificateGetter over
// every source's certificates.
func (c *certificates) Get(ctx context.Context, serial string) (*x509.Certificate, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, mgr := range c.sources {
		if mgr == nil {
			continue
		}
		if cert, ok := mgr.GetCertificate(ctx, c.cfg.MchID, serial); ok {
			return cert, true
		}
	}
	return nil, false
}

func (c *certificates) GetAll(ctx context.Context) map[string]*x509.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	all := map[string]*x509.Certificate{}
	for _, mgr := range c.sources {
		if mgr != nil {
			maps.Copy(all, mgr.GetCertificateMap(ctx, c.cfg.MchID))
		}
	}
	return all
}

func (c *certificates) GetNewestSerial(ctx context.Context) string {
	var newest *x509.Certificate
	serial := ""
	for s, cert := range c.GetAll(ctx) {
		if newest == nil || cert.NotBefore.After(newest.NotBefore) {
			newest, serial = cert, s
		}
	}
	return serial
}

// rotated downloads the certificates again when an answer names a serial
// none of them has: WeChat Pay publishes a new platform certificate and
// starts signing with it before the next scheduled download
// (CertificateRefresh, 24 h by default). At most one such download per
// rotationDownloadEvery, so answers naming unknown serials cannot make us
// download on every call. It reports whether serial is known afterwards.
func (c *certificates) rotated(ctx context.Context, serial string) bool {
	if _, ok := c.Get(ctx, serial); ok {
		return false // known: the signature itself is wrong
	}
	now, last := time.Now().UnixNano(), c.last.Load()
	if now-last < int64(rotationDownloadEvery) || !c.last.CompareAndSwap(last, now) {
		return false
	}
	c.download(ctx)
	_, ok := c.Get(ctx, serial)
	return ok
}

// rotatingVerifier verifies again, after a download, an answer whose
// serial no certificate held matched.
type rotatingVerifier struct {
	auth.Verifier
	certs *certificates
}

func (v rotatingVerifier) Verify(ctx context.Context, serial, message, signature string) error {
	err := v.Verifier.Verify(ctx, serial, message, signature)
	if err != nil && v.certs.rotated(ctx, serial) {
		err = v.Verifier.Verify(ctx, serial, message, signature)
	}
	return err
}

// verifier returns the verifier of cfg's mode.
func verifier(cfg Config, certs *certificates) auth.Verifier {
	switch cfg.Verification {
	case VerifyCertificates:
		return rotatingVerifier{verifiers.NewSHA256WithRSAVerifier(certs), certs}
	case VerifyBoth:
		return rotatingVerifier{verifiers.NewSHA256WithRSACombinedVerifier(certs, cfg.PublicKeyID, *cfg.PublicKey), certs}
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
// consts.WechatPayAPIServer and /v3/certificates, to base and path instead
// (the path rewritten in the signature too: see pathSigner).
type rehost struct {
	next http.RoundTripper
	base *url.URL
	path string
}

var sdkHost = strings.TrimPrefix(consts.WechatPayAPIServer, "https://")

func (t rehost) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != sdkHost || (t.base.Host == sdkHost && t.path == certificatesPath) {
		return t.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.base.Scheme, t.base.Host, ""
	if r.URL.Path == certificatesPath {
		r.URL.Path, r.URL.RawPath = t.path, ""
	}
	return t.next.RoundTrip(r)
}

// pathSigner signs the SDK downloader's requests for the path rehost sends
// them to: the signed message's second line is the request's path
// (APIv3 signature: method, URL path and query, timestamp, nonce, body).
type pathSigner struct {
	auth.Signer
	path string
}

func (s pathSigner) Sign(ctx context.Context, message string) (*auth.SignatureResult, error) {
	if method, rest, ok := strings.Cut(message, "\n"); ok && s.path != certificatesPath {
		if p, tail, ok := strings.Cut(rest, "\n"); ok && p == certificatesPath {
			message = method + "\n" + s.path + "\n" + tail
		}
	}
	return s.Signer.Sign(ctx, message)
}

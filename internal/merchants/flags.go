package merchants

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// Flags are the merchant settings of a command that calls WeChat Pay:
// -merchants-file, or the one merchant of -mchid and its key flags, and
// the hosts to call. cmd/consumer and cmd/status declare the same flags.
type Flags struct {
	File                   string
	MchID, CertSerial      string
	PrivateKeyFile         string
	PublicKeyID, PublicKey string // id and PEM file
	Verification           string
	APIv3KeyFile, APIv3Key string
	// SubMchIDs is the single merchant's allow-list (the consumer's
	// -allowed-sub-mchids); the file lists each merchant's own.
	SubMchIDs []string

	CertificateRefresh            time.Duration
	BaseURL, BackupURL, GlobalURL string
	Timeout                       time.Duration
}

// Register declares the flags into fs, with their defaults.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.MchID, "mchid", "", "merchant id (商户号)")
	fs.StringVar(&f.CertSerial, "mch-cert-serial", "", "merchant API certificate serial number")
	fs.StringVar(&f.PrivateKeyFile, "mch-private-key-file", "", "PEM file of the merchant API private key")
	fs.StringVar(&f.PublicKeyID, "wechatpay-public-key-id", "", "WeChat Pay public key id (PUB_KEY_ID_…)")
	fs.StringVar(&f.PublicKey, "wechatpay-public-key-file", "", "PEM file of the WeChat Pay public key")
	f.Verification = wxapi.VerifyPublicKey.String()
	fs.Func("wechatpay-verification", "how -mchid verifies WeChat Pay's answers: public_key, certificates (downloaded with the APIv3 key) or both (while migrating) (default public_key)",
		func(s string) error {
			if _, err := wxapi.ParseVerification(s); err != nil {
				return err
			}
			f.Verification = s
			return nil
		})
	fs.StringVar(&f.APIv3KeyFile, "apiv3-key-file", "", "file holding -mchid's 32-byte APIv3 key (certificates and both modes)")
	fs.StringVar(&f.APIv3Key, "apiv3-key", "", "-mchid's APIv3 key: set it through the environment variable (a Secret), never on the command line")
	fs.DurationVar(&f.CertificateRefresh, "wechatpay-certificate-refresh", 0, "how often platform certificates are downloaded again (0: the SDK's 24h)")
	fs.StringVar(&f.File, "merchants-file", "", "JSON file of several merchants (replaces -mchid and its key flags); see README")
	fs.StringVar(&f.BaseURL, "wechatpay-base-url", wxapi.DefaultBaseURL, "WeChat Pay main domain")
	fs.StringVar(&f.BackupURL, "wechatpay-backup-url", wxapi.DefaultBackupURL, "WeChat Pay backup domain, tried on network failures")
	fs.StringVar(&f.GlobalURL, "wechatpay-global-url", wxapi.DefaultGlobalBaseURL, "WeChat Pay cross-border domain (global_papay)")
	fs.DurationVar(&f.Timeout, "wechatpay-timeout", wxapi.DefaultTimeout, "timeout of one WeChat Pay HTTP call")
}

// Entries returns the merchants the flags name and the default one.
func (f *Flags) Entries() ([]Entry, string, error) {
	if f.File != "" {
		if f.MchID != "" {
			return nil, "", errors.New("use either -merchants-file or -mchid, not both")
		}
		file, err := ReadFile(f.File)
		if err != nil {
			return nil, "", err
		}
		return file.Merchants, file.Default, nil
	}
	v, err := wxapi.ParseVerification(f.Verification)
	if err != nil {
		return nil, "", err
	}
	missing := f.MchID == "" || f.PrivateKeyFile == "" || f.CertSerial == ""
	if v != wxapi.VerifyCertificates {
		missing = missing || f.PublicKeyID == "" || f.PublicKey == ""
	}
	if missing {
		return nil, "", fmt.Errorf("WeChat Pay merchant settings missing: set -mchid, -mch-cert-serial, -mch-private-key-file and, with -wechatpay-verification %s, -wechatpay-public-key-id and -wechatpay-public-key-file; or -merchants-file", v)
	}
	if v != wxapi.VerifyPublicKey && f.APIv3KeyFile == "" && f.APIv3Key == "" {
		return nil, "", fmt.Errorf("-wechatpay-verification %s needs the APIv3 key: -apiv3-key-file, or the environment variable of -apiv3-key", v)
	}
	e := Entry{
		MchID: f.MchID, CertSerial: f.CertSerial, PrivateKeyFile: f.PrivateKeyFile,
		Verification: f.Verification, PublicKeyID: f.PublicKeyID, PublicKeyFile: f.PublicKey,
		APIv3KeyFile: f.APIv3KeyFile, apiV3Key: f.APIv3Key, SubMchIDs: f.SubMchIDs,
	}
	return []Entry{e}, f.MchID, nil
}

// Merchant is one merchant's settings and its WeChat Pay client.
type Merchant struct {
	Entry
	Client *wxapi.Client
}

// Clients builds every merchant's client (a certificates or both mode
// downloads the platform certificates now: a wrong APIv3 key fails here).
// Close them with Close.
func (f *Flags) Clients() ([]Merchant, string, error) {
	entries, def, err := f.Entries()
	if err != nil {
		return nil, "", err
	}
	out := make([]Merchant, 0, len(entries))
	for _, e := range entries {
		cfg, err := e.Config()
		if err == nil {
			cfg.CertificateRefresh = f.CertificateRefresh
			cfg.BaseURL, cfg.BackupURL, cfg.GlobalBaseURL, cfg.Timeout = f.BaseURL, f.BackupURL, f.GlobalURL, f.Timeout
			var c *wxapi.Client
			if c, err = wxapi.New(cfg); err == nil {
				out = append(out, Merchant{Entry: e, Client: c})
				continue
			}
		}
		Close(out)
		return nil, "", fmt.Errorf("merchant %s: %w", e.MchID, err)
	}
	return out, def, nil
}

// Close closes every client of ms (stopping certificate refreshes).
func Close(ms []Merchant) {
	for _, m := range ms {
		_ = m.Client.Close()
	}
}

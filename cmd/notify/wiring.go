package main

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxterm/wxterm/internal/cli"
	"github.com/wxterm/wxterm/internal/merchants"
	"github.com/wxterm/wxterm/internal/notify"
)

// merchantSpec is one merchant's verification settings, from the file or
// the flags.
type merchantSpec struct {
	mchID, pubID, pubFile string
	certFiles             []string
	apiV3                 merchants.Entry // reads the APIv3 key (file or environment)
}

// loadMerchants loads every merchant's keys: from -merchants-file, or the one
// merchant of the -mchid flags.
func loadMerchants(c *config) ([]notify.Merchant, error) {
	var specs []merchantSpec
	if c.merchantsFile != "" {
		if c.mchID != "" {
			return nil, errors.New("use either -merchants-file or -mchid, not both")
		}
		f, err := merchants.ReadFile(c.merchantsFile)
		if err != nil {
			return nil, err
		}
		for _, m := range f.Merchants {
			specs = append(specs, merchantSpec{m.MchID, m.PublicKeyID, m.PublicKeyFile, m.PlatformCertFiles, m})
		}
	} else {
		if c.mchID == "" || c.apiV3KeyFile == "" {
			return nil, errors.New("merchant settings missing: set -mchid, -apiv3-key-file and -wechatpay-public-key-id/-file or -wechatpay-platform-cert-files, or -merchants-file")
		}
		specs = append(specs, merchantSpec{c.mchID, c.pubKeyID, c.pubKeyFile, cli.SplitList(c.platformCertFiles), merchants.Entry{APIv3KeyFile: c.apiV3KeyFile}})
	}
	out := make([]notify.Merchant, 0, len(specs))
	for _, s := range specs {
		m, err := s.load()
		if err != nil {
			return nil, fmt.Errorf("merchant %s: %w", s.mchID, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func (s merchantSpec) load() (notify.Merchant, error) {
	m := notify.Merchant{MchID: s.mchID}
	var err error
	if m.APIv3Key, err = s.apiV3.APIv3Key(); err != nil {
		return m, err
	}
	if m.APIv3Key == "" {
		return m, errors.New("no APIv3 key (apiv3_key_file or apiv3_key_env)")
	}
	if (s.pubID == "") != (s.pubFile == "") {
		return m, errors.New("a WeChat Pay public key needs both its id and its file")
	}
	var pubKey *rsa.PublicKey
	if s.pubFile != "" {
		if pubKey, err = utils.LoadPublicKeyWithPath(s.pubFile); err != nil {
			return m, fmt.Errorf("cannot load a public key from %s", s.pubFile)
		}
	}
	var certs core.CertificateGetter
	if len(s.certFiles) > 0 {
		var list []*x509.Certificate
		for _, f := range s.certFiles {
			cert, err := utils.LoadCertificateWithPath(f)
			if err != nil {
				return m, fmt.Errorf("cannot load a platform certificate from %s", f)
			}
			list = append(list, cert)
		}
		certs = core.NewCertificateMapWithList(list)
	}
	if m.Keys, err = notify.NewKeys(s.pubID, pubKey, certs); err != nil {
		return m, err
	}
	return m, nil
}

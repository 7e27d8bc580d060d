package ldapattribute

import (
	"bytes"
	"crypto/cipher"
	"crypto/des"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Gluu Server keeps secrets in its configuration "encoded" with the key in /etc/gluu/conf/salt
// (a line `encodeSalt = XXXX...`): Triple DES in ECB mode with PKCS#5 padding, keyed with the salt's
// first 24 bytes, and the result in standard base64. Gluu's setup (pyDes triple_des(salt, ECB,
// padmode=PAD_PKCS5)) and its Java StringEncrypter (DESede/ECB/PKCS5Padding) agree on this.

// gluuKeySize is the Triple DES key size: the salt's first 24 bytes.
const gluuKeySize = 24

// parseSalt returns the encodeSalt value from the content of Gluu's salt file.
func parseSalt(content string) (string, error) {
	for _, line := range strings.Split(content, "\n") {
		name, value, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(name) == "encodeSalt" {
			salt := strings.TrimSpace(value)
			if len(salt) < gluuKeySize {
				return "", fmt.Errorf("encodeSalt is %d bytes long, Triple DES needs at least %d", len(salt), gluuKeySize)
			}
			return salt, nil
		}
	}
	return "", errors.New("no encodeSalt line")
}

func gluuCipher(salt string) (cipher.Block, error) {
	if len(salt) < gluuKeySize {
		return nil, fmt.Errorf("salt is %d bytes long, Triple DES needs at least %d", len(salt), gluuKeySize)
	}
	return des.NewTripleDESCipher([]byte(salt[:gluuKeySize]))
}

// gluuEncrypt encodes plaintext the way Gluu's StringEncrypter does with the given salt.
func gluuEncrypt(salt, plaintext string) (string, error) {
	block, err := gluuCipher(salt)
	if err != nil {
		return "", err
	}
	bs := block.BlockSize()
	pad := bs - len(plaintext)%bs
	buf := append([]byte(plaintext), bytes.Repeat([]byte{byte(pad)}, pad)...)
	for i := 0; i < len(buf); i += bs { // ECB: each block alone
		block.Encrypt(buf[i:i+bs], buf[i:i+bs])
	}
	return base64.StdEncoding.EncodeToString(buf), nil
}

// gluuDecrypt reverses gluuEncrypt.
func gluuDecrypt(salt, encoded string) (string, error) {
	block, err := gluuCipher(salt)
	if err != nil {
		return "", err
	}
	buf, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return "", fmt.Errorf("not base64: %w", err)
	}
	bs := block.BlockSize()
	if len(buf) == 0 || len(buf)%bs != 0 {
		return "", fmt.Errorf("%d bytes is not a whole number of %d-byte blocks", len(buf), bs)
	}
	for i := 0; i < len(buf); i += bs {
		block.Decrypt(buf[i:i+bs], buf[i:i+bs])
	}
	pad := int(buf[len(buf)-1])
	if pad < 1 || pad > bs || !bytes.Equal(buf[len(buf)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return "", errors.New("bad padding (wrong salt?)")
	}
	return string(buf[:len(buf)-pad]), nil
}

// looksGluuEncrypted reports whether s has the shape of a Gluu-encoded value (base64 of whole
// Triple DES blocks). It cannot tell which salt was used.
func looksGluuEncrypted(s string) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(b) > 0 && len(b)%des.BlockSize == 0
}

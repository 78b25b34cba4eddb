package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// hkdfSHA256 is RFC 5869 written out with crypto/hmac for up to one output
// block, so the tests check the documented format independently of the
// package's use of crypto/hkdf.
func hkdfSHA256(secret, salt []byte, info string) []byte {
	if salt == nil {
		salt = make([]byte, sha256.Size)
	}
	ext := hmac.New(sha256.New, salt)
	ext.Write(secret)
	prk := ext.Sum(nil)
	exp := hmac.New(sha256.New, prk)
	exp.Write([]byte(info))
	exp.Write([]byte{1})
	return exp.Sum(nil)
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHKDFHelperRFC5869(t *testing.T) {
	// RFC 5869 test case 3 (no salt, empty info), first 32 bytes of OKM.
	ikm := bytes.Repeat([]byte{0x0b}, 22)
	want := unhex(t, "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d")
	if got := hkdfSHA256(ikm, nil, ""); !bytes.Equal(got, want) {
		t.Fatalf("test helper disagrees with RFC 5869: %x", got)
	}
}

func testMaster(t testing.TB) []byte {
	t.Helper()
	m, err := NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testSealer(t testing.TB, key []byte) *Sealer {
	t.Helper()
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewMasterKey(t *testing.T) {
	a, b := testMaster(t), testMaster(t)
	if len(a) != KeySize || bytes.Equal(a, b) {
		t.Fatalf("master keys: %x, %x", a, b)
	}
}

func TestDeriveKey(t *testing.T) {
	master := bytes.Repeat([]byte{7}, KeySize)
	enc := DeriveKey(master, "object-encryption")
	if len(enc) != KeySize {
		t.Fatalf("derived key is %d bytes", len(enc))
	}
	if !bytes.Equal(enc, DeriveKey(master, "object-encryption")) {
		t.Error("DeriveKey is not deterministic")
	}
	if want := hkdfSHA256(master, nil, "pgward v1 object-encryption"); !bytes.Equal(enc, want) {
		t.Errorf("DeriveKey does not follow the documented HKDF parameters:\n got %x\nwant %x", enc, want)
	}
	other := map[string][]byte{
		"other purpose":  DeriveKey(master, "chunk-id"),
		"empty purpose":  DeriveKey(master, ""),
		"other master":   DeriveKey(bytes.Repeat([]byte{8}, KeySize), "object-encryption"),
		"purpose suffix": DeriveKey(master, "object-encryption "),
	}
	for name, k := range other {
		if bytes.Equal(k, enc) {
			t.Errorf("%s gives the same key", name)
		}
	}
}

func TestNewSealerKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := NewSealer(make([]byte, n)); err == nil {
			t.Errorf("NewSealer accepted a %d-byte key", n)
		}
	}
}

func TestSealOpen(t *testing.T) {
	s := testSealer(t, DeriveKey(testMaster(t), "object-encryption"))
	aad := []byte("chunk 3f2a")
	for _, size := range []int{0, 1, 15, 16, 17, 8192, 1 << 20} {
		plain := bytes.Repeat([]byte{'p'}, size)
		sealed, err := s.Seal([]byte("hdr"), plain, aad)
		if err != nil {
			t.Fatal(err)
		}
		if string(sealed[:3]) != "hdr" || len(sealed) != 3+size+Overhead {
			t.Fatalf("size %d: Seal output is %d bytes, want %d after dst", size, len(sealed)-3, size+Overhead)
		}
		out, err := s.Open([]byte("x"), sealed[3:], aad)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if string(out[:1]) != "x" || !bytes.Equal(out[1:], plain) {
			t.Fatalf("size %d: round trip changed the data", size)
		}
	}
}

// TestEnvelopeFormat opens a Seal output with an independent implementation
// of the documented format, and the reverse, so the format doc and the code
// cannot drift apart.
func TestEnvelopeFormat(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, KeySize)
	s := testSealer(t, key)
	plain, aad := []byte("page data"), []byte("object name")

	gcmFor := func(salt []byte) cipher.AEAD {
		block, err := aes.NewCipher(hkdfSHA256(key, salt, "pgward v1 object"))
		if err != nil {
			t.Fatal(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		return aead
	}
	nonce := make([]byte, 12)

	sealed, err := s.Seal(nil, plain, aad)
	if err != nil {
		t.Fatal(err)
	}
	got, err := gcmFor(sealed[:16]).Open(nil, nonce, sealed[16:], aad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Seal output does not match the documented format: %v", err)
	}

	salt := []byte("0123456789abcdef")
	manual := gcmFor(salt).Seal(bytes.Clone(salt), nonce, plain, aad)
	if got, err := s.Open(nil, manual, aad); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open rejects an envelope built from the documented format: %v", err)
	}
}

func TestSealDiffers(t *testing.T) {
	s := testSealer(t, testMaster(t))
	plain := []byte("same plaintext")
	a, _ := s.Seal(nil, plain, nil)
	b, _ := s.Seal(nil, plain, nil)
	if bytes.Equal(a[:16], b[:16]) || bytes.Equal(a[16:], b[16:]) {
		t.Fatal("two seals of the same plaintext share a salt or ciphertext")
	}
}

func TestOpenRejects(t *testing.T) {
	s := testSealer(t, testMaster(t))
	plain := bytes.Repeat([]byte("tuple "), 100)
	aad := []byte("chunk 3f2a")
	sealed, err := s.Seal(nil, plain, aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name   string
		sealed []byte
		aad    []byte
		sealer *Sealer
	}{
		{name: "salt byte", sealed: flip(3)},
		{name: "ciphertext byte", sealed: flip(16 + 100)},
		{name: "tag byte", sealed: flip(len(sealed) - 1)},
		{name: "other aad", sealed: sealed, aad: []byte("chunk 3f2b")},
		{name: "no aad", sealed: sealed, aad: []byte{}},
		{name: "truncated by one", sealed: sealed[:len(sealed)-1]},
		{name: "extra byte", sealed: append(bytes.Clone(sealed), 0)},
		{name: "tag only", sealed: sealed[len(sealed)-Overhead:]},
		{name: "shorter than overhead", sealed: sealed[:Overhead-1]},
		{name: "empty", sealed: nil},
		{name: "wrong key", sealed: sealed, sealer: testSealer(t, testMaster(t))},
	}
	for _, tt := range tests {
		if tt.aad == nil {
			tt.aad = aad
		}
		if tt.sealer == nil {
			tt.sealer = s
		}
		out, err := tt.sealer.Open([]byte("keep"), tt.sealed, tt.aad)
		if !errors.Is(err, ErrAuth) {
			t.Errorf("%s: got %v, want ErrAuth", tt.name, err)
			continue
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst changed on failure: %q", tt.name, out)
		}
		if !strings.HasPrefix(err.Error(), "crypt: opening object: ") || !strings.Contains(err.Error(), ErrAuth.Error()) {
			t.Errorf("%s: unclear error %q", tt.name, err)
		}
	}
}

// TestSealerConcurrent shares one Sealer between 8 goroutines; run with -race.
func TestSealerConcurrent(t *testing.T) {
	s := testSealer(t, testMaster(t))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			plain := bytes.Repeat([]byte{byte(g)}, 10000+g)
			aad := []byte{byte(g)}
			for range 50 {
				sealed, err := s.Seal(nil, plain, aad)
				if err != nil {
					errs <- err
					return
				}
				out, err := s.Open(nil, sealed, aad)
				if err != nil || !bytes.Equal(out, plain) {
					errs <- fmt.Errorf("goroutine %d: round trip failed: %v", g, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testKDFParams are valid but as cheap as Validate allows, to keep tests fast.
func testKDFParams(t *testing.T) KDFParams {
	t.Helper()
	p, err := DefaultKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	p.N = 1 << 14
	return p
}

func TestDefaultKDFParams(t *testing.T) {
	a, err := DefaultKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DefaultKDFParams()
	if a.Algorithm != "scrypt" || a.N != 32768 || a.R != 8 || a.P != 1 || len(a.Salt) != 32 {
		t.Errorf("DefaultKDFParams = %+v", a)
	}
	if bytes.Equal(a.Salt, b.Salt) {
		t.Error("two DefaultKDFParams share a salt")
	}
	if err := a.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestWrapUnwrap(t *testing.T) {
	master := testMaster(t)
	pass := []byte("correct horse battery staple")
	w, err := WrapKey(master, pass, testKDFParams(t))
	if err != nil {
		t.Fatal(err)
	}
	// The key file is JSON; go through it as the repository will.
	js, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"kdf":`, `"algorithm":"scrypt"`, `"n":16384`, `"r":8`, `"p":1`, `"salt":"`, `"nonce":"`, `"ciphertext":"`} {
		if !bytes.Contains(js, []byte(field)) {
			t.Errorf("JSON %s lacks %s", js, field)
		}
	}
	var back WrappedKey
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	got, err := UnwrapKey(back, pass)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, master) {
		t.Fatal("unwrapped key differs from the master key")
	}
	if bytes.Contains(js, master) || strings.Contains(string(js), hex.EncodeToString(master)) {
		t.Fatal("the master key appears in the wrapped form")
	}

	wrong := map[string]func() (WrappedKey, []byte){
		"wrong passphrase":     func() (WrappedKey, []byte) { return back, []byte("Correct horse battery staple") },
		"empty passphrase":     func() (WrappedKey, []byte) { return back, nil },
		"tampered ciphertext":  func() (WrappedKey, []byte) { w := back; w.Ciphertext = flipped(w.Ciphertext, 5); return w, pass },
		"tampered tag":         func() (WrappedKey, []byte) { w := back; w.Ciphertext = flipped(w.Ciphertext, 40); return w, pass },
		"tampered nonce":       func() (WrappedKey, []byte) { w := back; w.Nonce = flipped(w.Nonce, 0); return w, pass },
		"tampered salt":        func() (WrappedKey, []byte) { w := back; w.KDF.Salt = flipped(w.KDF.Salt, 0); return w, pass },
		"tampered r (smaller)": func() (WrappedKey, []byte) { w := back; w.KDF.R = 4; return w, pass },
	}
	for name, f := range wrong {
		w, p := f()
		_, err := UnwrapKey(w, p)
		if !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("%s: got %v, want ErrWrongPassphrase", name, err)
		}
	}
	_, err = UnwrapKey(back, []byte("nope"))
	if want := "crypt: unwrapping master key: wrong passphrase"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

func flipped(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x80
	return b
}

func TestWrapKeyRejects(t *testing.T) {
	if _, err := WrapKey(make([]byte, 16), []byte("pass"), testKDFParams(t)); err == nil {
		t.Error("WrapKey accepted a 16-byte master key")
	}
	bad := testKDFParams(t)
	bad.N = 1 << 10
	if _, err := WrapKey(testMaster(t), []byte("pass"), bad); err == nil {
		t.Error("WrapKey accepted N=1024")
	}
}

// TestKDFParamsValidate checks that absurd parameters, as a tampered key file
// could hold, are refused before scrypt runs: several of these would need
// gigabytes of memory or hours of CPU if they were not.
func TestKDFParamsValidate(t *testing.T) {
	salt := make([]byte, 32)
	ok := KDFParams{Algorithm: "scrypt", N: 1 << 15, R: 8, P: 1, Salt: salt}
	tests := []struct {
		name string
		edit func(*KDFParams)
		want string // "" means valid
	}{
		{"defaults", func(p *KDFParams) {}, ""},
		{"largest N with r=1", func(p *KDFParams) { p.N, p.R = 1<<22, 1 }, ""},
		{"1 GiB of memory", func(p *KDFParams) { p.N, p.R = 1<<20, 8 }, ""},
		{"other algorithm", func(p *KDFParams) { p.Algorithm = "argon2id" }, `unsupported key derivation "argon2id"`},
		{"empty algorithm", func(p *KDFParams) { p.Algorithm = "" }, "unsupported key derivation"},
		{"N not a power of two", func(p *KDFParams) { p.N = 30000 }, "not a power of two"},
		{"N zero", func(p *KDFParams) { p.N = 0 }, "not a power of two"},
		{"N negative", func(p *KDFParams) { p.N = -1 << 15 }, "not a power of two"},
		{"N too small", func(p *KDFParams) { p.N = 1 << 13 }, "outside 2^14..2^22"},
		{"N too large", func(p *KDFParams) { p.N = 1 << 23 }, "outside 2^14..2^22"},
		{"N huge", func(p *KDFParams) { p.N = 1 << 40 }, "outside 2^14..2^22"},
		{"r zero", func(p *KDFParams) { p.R = 0 }, "at least 1"},
		{"p negative", func(p *KDFParams) { p.P = -1 }, "at least 1"},
		{"r*p too large", func(p *KDFParams) { p.R, p.P = 8, 16 }, "r*p must be at most 64"},
		{"p huge", func(p *KDFParams) { p.P = 1 << 30 }, "r*p must be at most 64"},
		{"r*p overflow", func(p *KDFParams) { p.R, p.P = 1<<40, 1<<40 }, "r*p must be at most 64"},
		{"4 GiB of memory", func(p *KDFParams) { p.N, p.R = 1<<22, 8 }, "4096 MiB of memory"},
		{"short salt", func(p *KDFParams) { p.Salt = salt[:8] }, "salt is 8 bytes"},
		{"no salt", func(p *KDFParams) { p.Salt = nil }, "salt is 0 bytes"},
	}
	for _, tt := range tests {
		p := ok
		tt.edit(&p)
		err := p.Validate()
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
			continue
		}
		// UnwrapKey must refuse them too, with a message that is not
		// "wrong passphrase".
		w := WrappedKey{KDF: p, Nonce: make([]byte, 12), Ciphertext: make([]byte, 48)}
		if _, err := UnwrapKey(w, []byte("pass")); err == nil || errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("%s: UnwrapKey error %v", tt.name, err)
		}
	}
}

func TestUnwrapMalformed(t *testing.T) {
	w, err := WrapKey(testMaster(t), []byte("pass"), testKDFParams(t))
	if err != nil {
		t.Fatal(err)
	}
	short := w
	short.Ciphertext = w.Ciphertext[:40]
	noNonce := w
	noNonce.Nonce = nil
	for name, bad := range map[string]WrappedKey{"short ciphertext": short, "no nonce": noNonce, "zero value": {}} {
		_, err := UnwrapKey(bad, []byte("pass"))
		if err == nil || errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("%s: got %v, want a malformed-key error", name, err)
		}
	}
}

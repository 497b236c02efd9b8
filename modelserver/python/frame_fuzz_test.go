package python

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func frame(meta string, body []byte) []byte {
	b := make([]byte, 8, 8+len(meta)+len(body))
	binary.LittleEndian.PutUint32(b[:4], uint32(len(meta)))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(body)))
	return append(append(b, meta...), body...)
}

func TestReadFrameLimits(t *testing.T) {
	var mbuf []byte
	m, body, err := readFrame(bytes.NewReader(frame(`{"t":"r","s":200,"ns":12}`, []byte("[1]"))), &mbuf)
	if err != nil || m.S != 200 || m.NS != 12 || string(body) != "[1]" {
		t.Fatalf("fast path: %+v %q %v", m, body, err)
	}
	hdr := make([]byte, 8)
	binary.LittleEndian.PutUint32(hdr[:4], 2)
	binary.LittleEndian.PutUint32(hdr[4:], 0xFFFFFFFF)
	if _, _, err := readFrame(bytes.NewReader(append(hdr, "{}"...)), &mbuf); err == nil {
		t.Fatal("a 4 GiB body length was accepted")
	}
	// A length that promises more than arrives fails without a huge allocation.
	binary.LittleEndian.PutUint32(hdr[4:], 512<<20)
	if _, _, err := readFrame(bytes.NewReader(append(hdr, "{}x"...)), &mbuf); err == nil {
		t.Fatal("a truncated body was accepted")
	}
}

// FuzzReadFrame: no input may panic the frame decoder.
func FuzzReadFrame(f *testing.F) {
	f.Add(frame(`{"t":"r","s":200,"ns":1}`, []byte(`"ok"`)))
	f.Add(frame(`{"t":"r","s":500,"err":"boom"}`, nil))
	f.Add(frame(`{"t":"c","designation":"inputs"}`, []byte(`[[1,2]]`)))
	f.Add([]byte{1, 0, 0, 0, 255, 255, 255, 255, '{'})
	f.Fuzz(func(t *testing.T, data []byte) {
		var mbuf []byte
		r := bytes.NewReader(data)
		for i := 0; i < 4; i++ {
			if _, _, err := readFrame(r, &mbuf); err != nil {
				return
			}
		}
	})
}

package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want int64
		err  string
	}{
		{"512", 512, ""},
		{"0", 0, ""}, // syntax only; the key's range check rejects it
		{"512B", 512, ""},
		{"64KiB", 64 << 10, ""},
		{"1MiB", 1 << 20, ""},
		{"1 MiB", 1 << 20, ""},
		{"1mib", 1 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"500KB", 500_000, ""},
		{"1MB", 1_000_000, ""},
		{"3GB", 3_000_000_000, ""},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"9223372036854775808", 0, "too large"},
		{"8388608TiB", 0, "too large"},
		{"", 0, "is not a size"},
		{"MiB", 0, "is not a size"},
		{"-1", 0, "is not a size"},
		{"1.5MiB", 0, "is not a size"},
		{"1M", 0, "is not a size"},
		{"1 MiB extra", 0, "is not a size"},
		{"0x10", 0, "is not a size"},
	}
	for _, tc := range cases {
		got, err := parseSize(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseSize(%q) = %d, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{
		0: "0", 512: "512", 1024: "1KiB", 1536: "1536", 64 << 10: "64KiB", 1 << 20: "1MiB",
		3 << 30: "3GiB", 1 << 40: "1TiB", 1_000_000: "1000000",
	} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
		if n > 0 {
			if back, err := parseSize(formatSize(n)); err != nil || back != n {
				t.Errorf("round trip of %d: %d, %v", n, back, err)
			}
		}
	}
}

func TestDurations(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want time.Duration
		text string // formatDuration(want)
		err  bool
	}{
		{in: "1500ms", want: 1500 * time.Millisecond, text: "1500ms"},
		{in: "1h", want: time.Hour, text: "1h"},
		{in: "24h", want: 24 * time.Hour, text: "24h"},
		{in: "90m", want: 90 * time.Minute, text: "90m"},
		{in: "1h30m", want: 90 * time.Minute, text: "90m"},
		{in: "3s", want: 3 * time.Second, text: "3s"},
		{in: "1.5s", want: 1500 * time.Millisecond, text: "1500ms"},
		{in: "250us", want: 250 * time.Microsecond, text: "250µs"},
		{in: "0", want: 0, text: "0s"},
		{in: "30", err: true},
		{in: "1d", err: true},
		{in: "", err: true},
		{in: "fast", err: true},
	}
	for _, tc := range cases {
		got, err := parseDuration(tc.in)
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "is not a duration") {
				t.Errorf("parseDuration(%q) = %v, %v; want error", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if s := formatDuration(got); s != tc.text {
			t.Errorf("formatDuration(%v) = %q, want %q", got, s, tc.text)
		}
	}
}

func TestParseStore(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want StoreSpec
		err  string
	}{
		{in: "memory", want: StoreSpec{Kind: StoreMemory}},
		{in: "bolt:data/broker.db", want: StoreSpec{Kind: StoreBolt, Path: "data/broker.db"}},
		{in: "bolt:/var/lib/broker.db", want: StoreSpec{Kind: StoreBolt, Path: "/var/lib/broker.db"}},
		{in: "redis://cache:6380/2", want: StoreSpec{Kind: StoreRedis, Addr: "cache:6380", DB: 2}},
		{in: "redis://cache", want: StoreSpec{Kind: StoreRedis, Addr: "cache:6379"}},
		{in: "redis://cache:6379/", want: StoreSpec{Kind: StoreRedis, Addr: "cache:6379"}},
		{in: "redis://[::1]:6379/0", want: StoreSpec{Kind: StoreRedis, Addr: "[::1]:6379"}},
		{in: "redis://u:pw@cache:6379/1", want: StoreSpec{Kind: StoreRedis, Addr: "cache:6379", DB: 1, Username: "u", Password: "pw"}},
		{in: "", err: "is not a store"},
		{in: "Memory", err: "is not a store"},
		{in: "bolt:", err: "bolt needs a file path"},
		{in: "bolt:  ", err: "bolt needs a file path"},
		{in: "redis:cache", err: "missing //"},
		{in: "redis://", err: "no host"},
		{in: "redis://:6379/0", err: "no host"},
		{in: "redis://cache:port/0", err: "cannot parse"},
		{in: "redis://cache:0/0", err: "port must be"},
		{in: "redis://cache:6379/one", err: "database must be"},
		{in: "redis://cache:6379/-1", err: "database must be"},
		{in: "redis://cache:6379/0?pool=3", err: "query"},
		{in: "redis://cache:6379/0#x", err: "fragment"},
		{in: "rediss://cache:6379/0", err: "is not a store"},
		{in: "postgres://u:secret@db/x", err: `"postgres://xxxxx@db/x"`},
	}
	for _, tc := range cases {
		got, err := ParseStore(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseStore(%q) = %+v, %v; want error %q", tc.in, got, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseStore(%q) leaks the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseStore(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestCheckOrigins(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in []string
		ok bool
	}{
		{nil, true},
		{[]string{"*"}, true},
		{[]string{"https://a.example"}, true},
		{[]string{"http://localhost:3000", "https://a.example:8443"}, true},
		{[]string{"*", "https://a.example"}, false},
		{[]string{"https://a.example/"}, false},
		{[]string{"https://a.example/app"}, false},
		{[]string{"a.example"}, false},
		{[]string{"ftp://a.example"}, false},
		{[]string{"https://*.example"}, false},
		{[]string{"https://u@a.example"}, false},
		{[]string{"https://a.example?x"}, false},
		{[]string{"null"}, false},
	}
	for _, tc := range cases {
		if err := checkOrigins(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkOrigins(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestCheckListen(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in string
		ok bool
	}{
		{":8080", true}, {"127.0.0.1:8080", true}, {"[::1]:0", true}, {"localhost:65535", true},
		{"8080", false}, {":", false}, {"", false}, {":http", false}, {":-1", false}, {":65536", false},
	}
	for _, tc := range cases {
		if err := checkListen(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkListen(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestMaskUserinfo(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://:pw@h/0":     "redis://xxxxx@h/0",
		"redis://u:p@w@h:1/0": "redis://xxxxx@h:1/0",
		"redis://h/0":         "redis://h/0",
		"bolt:a@b":            "bolt:a@b",
	} {
		if got := maskUserinfo(in); got != want {
			t.Errorf("maskUserinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"listn", "listen", 1}, {"kitten", "sitting", 3}} {
		if d := editDistance(tc.a, tc.b); d != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}

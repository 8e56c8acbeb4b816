package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFlagsFallBackToEnvironment(t *testing.T) {
	o, err := parse([]string{"-sync", "always"}, env(map[string]string{"ROOMLOG_SYNC": "interval",
		"ROOMLOG_HTTP": "127.0.0.1:9999", "ROOMLOG_HEARTBEAT_TIMEOUT": "45s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.sync != "always" || o.http != "127.0.0.1:9999" || o.heartbeatTimeout != 45*time.Second {
		t.Errorf("flags over environment: %+v", o)
	}
	if _, err := parse(nil, env(map[string]string{"ROOMLOG_MAX_ROOMS": "many"}), io.Discard); err == nil {
		t.Error("a malformed environment variable was accepted")
	}
}

func TestDevelopmentAndProductionDefaults(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	o, _ := parse([]string{"-data", dir}, env(nil), io.Discard)
	cfg, dev, err := config(o, logger)
	if err != nil || !dev {
		t.Fatalf("no secret: dev=%v, %v", dev, err)
	}
	if !cfg.Policy.Default.MultiRoom || len(cfg.Gateway.OriginPatterns) == 0 || len(cfg.Secret) < 32 {
		t.Errorf("development mode: multi-room %v, origins %v, secret %d bytes", cfg.Policy.Default.MultiRoom,
			cfg.Gateway.OriginPatterns, len(cfg.Secret))
	}
	again, _, _ := config(o, logger)
	if string(again.Secret) != string(cfg.Secret) {
		t.Error("the development secret changed between two starts")
	}
	if cfg.CheckpointKey == nil || !cfg.CheckpointKey.Equal(again.CheckpointKey) {
		t.Error("development mode has no checkpoint key, or a new one at each start")
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint.key.pub")); err != nil {
		t.Errorf("the checkpoint public key is not beside the private key: %v", err)
	}
	// Development mode keeps a generated NATS password beside the secret.
	pw, err := os.ReadFile(filepath.Join(dir, natsPasswordFile))
	if err != nil || cfg.Log.Password == "" || strings.TrimSpace(string(pw)) != cfg.Log.Password {
		t.Errorf("development NATS password %q, file %q, %v", cfg.Log.Password, pw, err)
	}
	if again.Log.Password != cfg.Log.Password {
		t.Error("the development NATS password changed between two starts")
	}
	const secret = "0123456789abcdef0123456789abcdef"
	o, _ = parse([]string{"-data", dir, "-secret", secret, "-nats-password", "production-password-1"}, env(nil), io.Discard)
	cfg, dev, err = config(o, logger)
	if err != nil || dev || cfg.Policy.Default.MultiRoom || cfg.Log.Password != "production-password-1" || cfg.CheckpointKey != nil {
		t.Errorf("with a secret: dev=%v multi-room=%v password %q checkpoint key %v, %v", dev, cfg.Policy.Default.MultiRoom,
			cfg.Log.Password, cfg.CheckpointKey != nil, err)
	}
}

func TestProductionNeedsANATSPasswordForItsPort(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	const secret = "0123456789abcdef0123456789abcdef"
	o, _ := parse([]string{"-data", t.TempDir(), "-secret", secret}, env(nil), io.Discard)
	if _, _, err := config(o, logger); err == nil || !strings.Contains(err.Error(), "-nats-password") {
		t.Errorf("production without a NATS password: %v, want a refusal naming -nats-password", err)
	}
	o, _ = parse([]string{"-data", t.TempDir(), "-secret", secret}, env(map[string]string{"ROOMLOG_NATS_PASSWORD": "from-the-environment"}), io.Discard)
	if cfg, _, err := config(o, logger); err != nil || cfg.Log.Password != "from-the-environment" {
		t.Errorf("ROOMLOG_NATS_PASSWORD: password %q, %v", cfg.Log.Password, err)
	}
	o, _ = parse([]string{"-data", t.TempDir(), "-secret", secret, "-nats-listen", "off"}, env(nil), io.Discard)
	if cfg, _, err := config(o, logger); err != nil || cfg.Log.Listen != "" {
		t.Errorf("no NATS port: listen %q, %v", cfg.Log.Listen, err)
	}
}

func TestPerAppPolicies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apps.json")
	os.WriteFile(path, []byte(`{"classroom": {"multi_room": true, "max_rooms": 8}, "live": {"limits": {"message_bytes": 2048}}}`), 0o600)
	o, _ := parse([]string{"-data", t.TempDir(), "-secret", "0123456789abcdef0123456789abcdef", "-nats-listen", "off", "-apps", path}, env(nil), io.Discard)
	cfg, _, err := config(o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := domain.NewDecider(cfg.Policy)
	if err != nil {
		t.Fatal(err)
	}
	if p := d.Policy("classroom"); !p.MultiRoom || p.MaxRooms != 8 || p.Limits.MessageBytes != 1024 {
		t.Errorf("classroom policy: %+v", p)
	}
	if p := d.Policy("live"); p.MultiRoom || p.Limits.MessageBytes != 2048 || p.Limits.BroadcastPerSecond != 10 {
		t.Errorf("live policy: %+v", p)
	}
}

func TestLogFormat(t *testing.T) {
	var b strings.Builder
	logger, err := newLogger(&b, "json", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("roomd is running", "websocket", "ws://127.0.0.1:7070/ws")
	var line map[string]any
	if err := json.Unmarshal([]byte(b.String()), &line); err != nil || line["msg"] != "roomd is running" ||
		line["websocket"] != "ws://127.0.0.1:7070/ws" || line["level"] != "INFO" {
		t.Fatalf("-log-format json wrote %q (%v)", b.String(), err)
	}
	if _, err := newLogger(io.Discard, "xml", slog.LevelInfo); err == nil {
		t.Error("-log-format xml was accepted")
	}
	o, err := parse([]string{"-data", t.TempDir(), "-log-format", "json", "-pprof", "127.0.0.1:6060"}, env(nil), io.Discard)
	if err != nil || o.logFormat != "json" || o.pprof != "127.0.0.1:6060" {
		t.Fatalf("flags: %+v, %v", o, err)
	}
	cfg, _, err := config(o, logger)
	if err != nil || cfg.PprofListen != "127.0.0.1:6060" {
		t.Fatalf("-pprof did not reach the node's config: %v", err)
	}
}

func TestMediaFlags(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	o, err := parse([]string{"-data", t.TempDir(), "-role", "media", "-media-ips", "0.0.0.0", "-media-public-ips",
		"203.0.113.7", "-media-udp-port", "5004", "-media-ports", "40000-40100", "-media-ice-servers",
		"stun:stun.example.org:3478"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config(o, logger)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Media
	if !cfg.NoGateway || cfg.NoMedia || m.IPs[0] != "0.0.0.0" || m.NAT1To1IPs[0] != "203.0.113.7" || m.UDPPort != 5004 ||
		m.PortMin != 40000 || m.PortMax != 40100 || m.ICEServers[0].URLs[0] != "stun:stun.example.org:3478" {
		t.Errorf("media flags: gateway off %v, media off %v, %+v", cfg.NoGateway, cfg.NoMedia, m)
	}
	o, _ = parse([]string{"-data", t.TempDir(), "-role", "gateway"}, env(nil), io.Discard)
	if cfg, _, err := config(o, logger); err != nil || !cfg.NoMedia || cfg.NoGateway {
		t.Errorf("-role gateway: media off %v, gateway off %v, %v", cfg.NoMedia, cfg.NoGateway, err)
	}
	// A gateway or media node alone on a log nobody else can reach would
	// never see the other half of the media plane.
	for _, role := range []string{"gateway", "media"} {
		for _, off := range []string{"-nats-listen=off", "-nats-listen="} {
			o, _ = parse([]string{"-data", t.TempDir(), "-role", role, off}, env(nil), io.Discard)
			if _, _, err := config(o, logger); err == nil || !strings.Contains(err.Error(), "-nats-url") {
				t.Errorf("-role %s %s: %v, want a refusal naming -nats-url", role, off, err)
			}
		}
	}
	o, _ = parse([]string{"-data", t.TempDir(), "-media-ports", "9-1"}, env(nil), io.Discard)
	if _, _, err := config(o, logger); err == nil {
		t.Error("a reversed port range was accepted")
	}
}

// A heartbeat timeout not above the heartbeat interval would time out every
// well-behaved client: roomd refuses to start with it, naming both flags.
func TestHeartbeatTimeoutMustExceedTheInterval(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	o, err := parse([]string{"-data", t.TempDir(), "-heartbeat-timeout", "5s"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = config(o, logger)
	if err == nil || !strings.Contains(err.Error(), "-heartbeat-timeout 5s must exceed -heartbeat 30s") {
		t.Fatalf("-heartbeat-timeout 5s with the default -heartbeat: %v", err)
	}
	o.heartbeat = time.Second
	if _, _, err := config(o, logger); err != nil {
		t.Fatalf("-heartbeat 1s -heartbeat-timeout 5s: %v", err)
	}
}

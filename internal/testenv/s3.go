package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/greffier/greffier/internal/blob"
)

// VersityGWEnv names the environment variable that may hold the path of
// the versitygw binary.
const VersityGWEnv = "GREFFIER_VERSITYGW"

// s3Region is the region the test gateway announces.
const s3Region = "us-east-1"

// sharedS3 is the one package-level variable in testenv, by necessity: the
// gateway shared by every test in the binary must outlive any single test,
// and only a package-level Once can start it lazily exactly once. It dies
// with the binary (Pdeathsig), never in a test's cleanup.
var sharedS3 = sync.OnceValues(startShared)

// S3 returns the configuration of a new, empty bucket on the test binary's
// shared versitygw gateway, which it starts on first use. The bucket is
// removed when the test ends.
func S3(t testing.TB) blob.S3Config {
	t.Helper()
	srv, err := sharedS3()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return srv.NewBucket(t)
}

// S3Server is a versitygw gateway with the posix backend, owned by the
// test that started it, for tests that stop and restart storage. Port,
// credentials and data survive Stop and Start.
type S3Server struct {
	bin     string
	dataDir string // posix root: one directory per bucket
	logPath string
	addr    string // 127.0.0.1:port
	access  string
	secret  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	logFile *os.File
}

// StartS3Server starts a gateway for this test alone; it is killed when
// the test ends.
func StartS3Server(t testing.TB) *S3Server {
	t.Helper()
	srv, err := newS3Server(t.TempDir())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	if err := srv.Start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return srv
}

func newS3Server(dir string) (*S3Server, error) {
	bin, err := findVersityGW()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, fmt.Errorf("versitygw data dir: %w", err)
	}
	return &S3Server{
		bin:     bin,
		dataDir: data,
		logPath: filepath.Join(dir, "versitygw.log"),
		access:  "T" + randHex(9),
		secret:  randHex(20),
	}, nil
}

// Config returns how to reach the gateway, with Bucket "greffier" (which
// blob.NewS3 creates on first use). The part size is S3's minimum so that
// tests reach multipart uploads with small objects.
func (s *S3Server) Config() blob.S3Config {
	return blob.S3Config{
		Endpoint:   s.addr,
		Bucket:     "greffier",
		AccessKey:  s.access,
		SecretKey:  s.secret,
		Region:     s3Region,
		PartSize:   blob.MinS3PartSize,
		RetryDelay: 50 * time.Millisecond,
	}
}

// DataDir is the posix backend's root: bucket b's object k is the file
// DataDir()/b/k, for tests that tamper with storage behind the gateway.
func (s *S3Server) DataDir() string { return s.dataDir }

// NewBucket creates an empty bucket for this test and returns its
// configuration; the bucket's directory is removed when the test ends.
func (s *S3Server) NewBucket(t testing.TB) blob.S3Config {
	t.Helper()
	cfg := s.Config()
	cfg.Bucket = "t-" + randHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatalf("testenv: S3 client: %v", err)
	}
	if err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
		t.Fatalf("testenv: create bucket %s on versitygw at %s: %v", cfg.Bucket, cfg.Endpoint, err)
	}
	t.Cleanup(func() {
		// Straight on disk: the gateway may be stopped by now, and
		// emptying a bucket through S3 takes one request per object.
		if err := os.RemoveAll(filepath.Join(s.dataDir, cfg.Bucket)); err != nil {
			t.Errorf("testenv: remove bucket %s: %v", cfg.Bucket, err)
		}
	})
	return cfg
}

// Start launches the gateway (again) and returns once it answers HTTP.
func (s *S3Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	if s.addr == "" {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		s.addr = addr
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("versitygw log: %w", err)
	}
	cmd := exec.Command(s.bin,
		"--port", s.addr,
		"--access", s.access,
		"--secret", s.secret,
		"--region", s3Region,
		"--quiet",
		"posix", s.dataDir)
	// Files, not pipes: with *os.File exec starts no copying goroutines,
	// so packages that check for leaked goroutines stay clean.
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.cmd, s.logFile = cmd, logFile
	if err := s.waitReady(30 * time.Second); err != nil {
		s.stopLocked()
		return fmt.Errorf("versitygw at %s did not start: %w\n%s", s.addr, err, tail(s.logPath))
	}
	return nil
}

// Stop kills the gateway abruptly, as a crash would, and waits for it to
// exit; the port is free when it returns. Stopping twice is harmless.
func (s *S3Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	return nil
}

func (s *S3Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	// Waiting reaps it; an error only means waitReady reaped it already.
	_, _ = s.cmd.Process.Wait()
	_ = s.logFile.Close()
	s.cmd, s.logFile = nil, nil
}

// waitReady polls until the gateway answers any HTTP response, failing
// early if the process exits. Polling the process with WNOHANG instead of
// a Wait goroutine keeps testenv from leaving goroutines behind.
func (s *S3Server) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var ws syscall.WaitStatus
		if pid, err := syscall.Wait4(s.cmd.Process.Pid, &ws, syscall.WNOHANG, nil); err == nil && pid > 0 {
			return fmt.Errorf("process exited (%v)", ws)
		}
		resp, err := client.Get("http://" + s.addr + "/")
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within %s: %w", timeout, err)
		}
		<-tick.C
	}
}

func startShared() (*S3Server, error) {
	removeStaleSharedDirs()
	dir, err := os.MkdirTemp("", sharedDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, fmt.Errorf("versitygw temp dir: %w", err)
	}
	srv, err := newS3Server(dir)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	return srv, nil
}

const sharedDirPrefix = "greffier-versitygw-"

// removeStaleSharedDirs deletes the data of shared gateways whose test
// binary has exited: nothing else can, since they die by signal.
func removeStaleSharedDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), sharedDirPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), sharedDirPrefix)
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

func findVersityGW() (string, error) {
	p, err := Program("versitygw", VersityGWEnv)
	if err != nil {
		return "", fmt.Errorf("%w: run scripts/test.sh, which installs it, or go install github.com/versity/versitygw/cmd/versitygw@v1.8.0", err)
	}
	return p, nil
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	return addr, nil
}

// tail returns the end of the gateway's log, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "versitygw log (" + path + "):\n" + string(b)
}

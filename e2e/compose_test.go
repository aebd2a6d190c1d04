package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/fraudpipe/fraudpipe/rules"
)

// docker-compose.yml cannot be run here (no container registry is reachable), but it must stay a valid file
// whose services are the ones the README describes.
func TestDockerComposeFileIsValid(t *testing.T) {
	var cmd *exec.Cmd
	switch {
	case exec.Command("docker", "compose", "version").Run() == nil:
		cmd = exec.Command("docker", "compose", "-f", "../docker-compose.yml", "config", "--services")
	default:
		requireTool(t, "docker-compose")
		cmd = exec.Command("docker-compose", "-f", "../docker-compose.yml", "config", "--services")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose.yml is invalid: %v\n%s", err, out)
	}
	for _, svc := range []string{"kafka", "redis", "topics", "detector-rules", "detector", "notifier", "mailpit", "prometheus", "grafana"} {
		if !regexpLine(svc).Match(out) {
			t.Errorf("service %s missing from docker-compose.yml:\n%s", svc, out)
		}
	}
}

func regexpLine(s string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(s) + `$`)
}

// composeConfig is docker-compose.yml as docker compose resolves it (YAML, relative paths made absolute).
func composeConfig(t *testing.T) []byte {
	t.Helper()
	var cmd *exec.Cmd
	if exec.Command("docker", "compose", "version").Run() == nil {
		cmd = exec.Command("docker", "compose", "-f", "../docker-compose.yml", "config")
	} else {
		requireTool(t, "docker-compose")
		cmd = exec.Command("docker-compose", "-f", "../docker-compose.yml", "config")
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker compose config: %v", err)
	}
	return out
}

// Every host path the compose file mounts and every source the Dockerfile copies exists: a renamed file would
// otherwise surface only when a user runs `docker compose up`.
func TestComposeAndDockerfilePathsExist(t *testing.T) {
	var cfg struct {
		Services map[string]struct {
			Image   string `yaml:"image"`
			Volumes []any  `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(composeConfig(t), &cfg); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("..")
	mounts := 0
	for name, svc := range cfg.Services {
		if strings.HasSuffix(svc.Image, ":latest") || (svc.Image != "" && !strings.Contains(svc.Image, ":")) {
			t.Errorf("service %s: image %q is not pinned to a release", name, svc.Image)
		}
		for _, v := range svc.Volumes {
			var src string
			switch v := v.(type) {
			case string: // docker-compose 1.x: "src:dst:mode"
				src, _, _ = strings.Cut(v, ":")
			case map[string]any: // docker compose v2: {type, source, target}
				if v["type"] != "bind" {
					continue
				}
				src, _ = v["source"].(string)
			}
			if !filepath.IsAbs(src) {
				continue // a named volume
			}
			mounts++
			if _, err := os.Stat(src); err != nil {
				t.Errorf("service %s mounts %s, which does not exist: %v", name, src, err)
			}
			if !strings.HasPrefix(src, root) {
				t.Errorf("service %s mounts %s, outside the repository", name, src)
			}
		}
	}
	if mounts < 4 {
		t.Fatalf("only %d bind mounts found: the test no longer reads the compose file", mounts)
	}
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	copies := 0
	for _, line := range strings.Split(string(df), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--from") {
			continue
		}
		for _, src := range f[1 : len(f)-1] {
			if strings.HasPrefix(src, "--") || src == "." {
				continue
			}
			copies++
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("the Dockerfile copies %s, which does not exist", src)
			}
		}
	}
	if copies < 2 {
		t.Fatalf("only %d COPY sources found in the Dockerfile", copies)
	}
}

// The detectors in the image find the shipped rules and every list file they name where the image and the compose
// mount put them: /etc/fraudpipe holds the examples directory.
func TestShippedRulesLoadFromTheImageLayout(t *testing.T) {
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), "COPY examples/ /etc/fraudpipe/") {
		t.Fatal("the Dockerfile no longer copies examples/ to /etc/fraudpipe/; update this test with it")
	}
	compose := string(composeConfig(t))
	if !strings.Contains(compose, "/etc/fraudpipe/rules.yaml") {
		t.Fatal("docker-compose.yml's detector no longer reads /etc/fraudpipe/rules.yaml")
	}
	// Build /etc/fraudpipe as the image does, then load the rules from there as the detector would.
	etc := filepath.Join(t.TempDir(), "etc", "fraudpipe")
	if err := os.CopyFS(etc, os.DirFS("../examples")); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.LoadFile(filepath.Join(etc, "rules.yaml"))
	if err != nil {
		t.Fatalf("the shipped rules do not load from the image's layout: %v", err)
	}
	if len(rs.Lists) == 0 {
		t.Fatal("the shipped rules name no list files: the test checks nothing about them")
	}
}

package e2e

import (
	"os/exec"
	"regexp"
	"testing"
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
	for _, svc := range []string{"kafka", "redis", "topics", "detector", "notifier", "mailpit", "prometheus", "grafana"} {
		if !regexpLine(svc).Match(out) {
			t.Errorf("service %s missing from docker-compose.yml:\n%s", svc, out)
		}
	}
}

func regexpLine(s string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(s) + `$`)
}

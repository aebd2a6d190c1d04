package doccheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/fraudpipe/fraudpipe/rules"
)

const root = "../.."

func TestReadmeIsAGuideOfAtMost350Lines(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > 350 {
		t.Fatalf("README.md has %d lines; depth belongs in docs/", n)
	}
}

var link = regexp.MustCompile(`\]\(([^)\s]+)\)`)

func TestEveryRelativeLinkResolves(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"))
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(withoutCode(string(b)), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue // no network here: external links are not fetched
			}
			path, anchor, _ := strings.Cut(target, "#")
			dest := f
			if path != "" {
				dest = filepath.Join(filepath.Dir(f), path)
			}
			content, err := os.ReadFile(dest)
			if err != nil {
				t.Errorf("%s: link %s: %v", rel(f), target, err)
				continue
			}
			if anchor != "" && !hasHeading(string(content), anchor) {
				t.Errorf("%s: link %s: %s has no heading #%s", rel(f), target, rel(dest), anchor)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d relative links found: the pattern no longer matches the docs", checked)
	}
}

func rel(p string) string { r, _ := filepath.Rel(root, p); return r }

// withoutCode drops fenced code blocks, whose brackets are not links.
func withoutCode(s string) string {
	var out []string
	fenced := false
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// hasHeading reports whether markdown has a heading whose GitHub anchor is anchor: lower case, spaces to hyphens,
// punctuation other than hyphens and underscores dropped.
func hasHeading(markdown, anchor string) bool {
	for _, l := range strings.Split(withoutCode(markdown), "\n") {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		if slug(strings.TrimLeft(l, "# ")) == anchor {
			return true
		}
	}
	return false
}

func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestSlugFollowsGitHub(t *testing.T) {
	for heading, want := range map[string]string{
		"Event time and late payments":                 "event-time-and-late-payments",
		"Windows and their precision; bounded state":   "windows-and-their-precision-bounded-state",
		"Payment — topic `payments`, key = account id": "payment--topic-payments-key--account-id",
	} {
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q, want %q", heading, got, want)
		}
	}
}

// Every variable an expression rule can use is documented in the rules reference.
func TestRulesReferenceListsEveryExpressionVariable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "docs", "rules.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range rules.ExpressionVariableNames() {
		if !strings.Contains(string(b), "`"+name+"`") {
			t.Errorf("docs/rules.md does not list the expression variable %s", name)
		}
	}
}

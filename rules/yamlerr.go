package rules

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	goccy "github.com/goccy/go-yaml"
	goccyparser "github.com/goccy/go-yaml/parser"
)

// yaml.v3 reports a syntax error at the line where the enclosing construct began (the rules list, for a key
// indented one space too far in its fifth rule), counting from zero for some errors. goccy/go-yaml reports where
// it found the problem, which can be one line early when the problem is the end of the previous line. The later
// of the two is the line a person has to look at.
var v3Line = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxError turns a YAML syntax error into a ValidationError with the line to look at and, when that line lies
// within a rule, the rule's name.
func syntaxError(file string, data []byte, err error) *ValidationError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := v3Line.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.TrimPrefix(err.Error(), m[0])
	}
	var se *goccy.SyntaxError
	if _, perr := goccyparser.ParseBytes(data, 0); errors.As(perr, &se) && se.Token != nil && se.Token.Position.Line > line {
		line, msg = se.Token.Position.Line, se.Message
	}
	line = unclosedAbove(data, line)
	return &ValidationError{File: file, Line: line, Rule: ruleAt(data, line), Msg: "not valid YAML: " + msg}
}

// unclosedAbove moves a line that starts a list entry back to the line above it when that one opens a flow
// mapping or sequence it does not close: the missing brace is the problem, found only where the next entry starts.
func unclosedAbove(data []byte, line int) int {
	lines := strings.Split(string(data), "\n")
	if line < 2 || line > len(lines) || !strings.HasPrefix(strings.TrimLeft(lines[line-1], " "), "-") {
		return line
	}
	prev := line - 2
	for prev >= 0 && strings.TrimSpace(lines[prev]) == "" {
		prev--
	}
	if prev < 0 {
		return line
	}
	l := lines[prev]
	if strings.Count(l, "{") > strings.Count(l, "}") || strings.Count(l, "[") > strings.Count(l, "]") {
		return prev + 1
	}
	return line
}

var nameValue = regexp.MustCompile(`(?:^|[\s{,-])name:\s*["']?([^"',}#\s][^"',}#]*?)["']?\s*(?:[,}#]|$)`)

// ruleAt names the rule whose entry in the top-level rules list holds line (counted from 1), reading the text,
// since it does not parse: entries start with "- " at the list's indentation, and the entry's first "name:" names
// it. "" when the line is outside the list or its entry names no rule.
func ruleAt(data []byte, line int) string {
	lines := strings.Split(string(data), "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	start, indent := -1, -1
	entry := -1 // the entry's first line, for the latest entry that starts at or above line
	for i, l := range lines {
		t := strings.TrimLeft(l, " ")
		switch {
		case start < 0:
			if strings.HasPrefix(l, "rules:") {
				start = i
			}
			continue
		case t == "" || strings.HasPrefix(t, "#"):
			continue
		case len(t) == len(l): // back at the top level: the rules list has ended
			if i < line {
				return ""
			}
		case strings.HasPrefix(t, "- ") || t == "-":
			if indent < 0 {
				indent = len(l) - len(t)
			}
			if len(l)-len(t) == indent && i < line {
				entry = i
			}
		}
		if i >= line-1 && (len(t) == len(l) || (strings.HasPrefix(t, "-") && len(l)-len(t) == indent && i > line-1)) {
			break
		}
	}
	if entry < 0 {
		return ""
	}
	for i := entry; i < len(lines); i++ {
		if i > entry {
			t := strings.TrimLeft(lines[i], " ")
			if len(t) == len(lines[i]) && t != "" || strings.HasPrefix(t, "-") && len(lines[i])-len(t) == indent {
				break // the next entry, or the end of the list
			}
		}
		if m := nameValue.FindStringSubmatch(lines[i]); m != nil {
			return strings.TrimSpace(m[1])
		}
	}
	return ""
}

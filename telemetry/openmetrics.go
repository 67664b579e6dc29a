package telemetry

import (
	"bytes"
	"strings"
)

// openMetricsToText rewrites an OpenMetrics 1.0 body into the classic text
// exposition so that one fast parser reads both. expfmt's own OpenMetrics
// decoder matches every line against the ABNF grammar and needs seconds for
// tens of kilobytes, too slow for a scrape every second.
//
// The rewrite keeps what the signals need and drops the rest: "# EOF" ends
// the body; HELP and UNIT lines go; a counter's TYPE line names its _total
// sample as the text format does; "unknown" becomes "untyped"; the TYPE of
// gaugehistogram, stateset and info families goes (their samples stay,
// untyped); _created samples go; exemplars and timestamps (seconds in
// OpenMetrics, milliseconds in text) are cut from sample lines. Whatever it
// does not understand it passes on, for the text parser to reject.
func openMetricsToText(body []byte) []byte {
	out := make([]byte, 0, len(body))
	var family, kind string // the current TYPE
	for len(body) > 0 {
		var line []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		if bytes.HasPrefix(line, []byte("#")) {
			fields := strings.Fields(string(line))
			switch {
			case len(fields) == 2 && fields[1] == "EOF":
				return out
			case len(fields) == 4 && fields[1] == "TYPE":
				family, kind = fields[2], fields[3]
				if t := omType(family, kind); t != "" {
					out = append(out, t...)
					out = append(out, '\n')
				}
			}
			continue // HELP, UNIT and comments
		}
		name, rest := splitSample(line)
		if name == family+"_created" && (kind == "counter" || kind == "histogram" || kind == "summary") {
			continue
		}
		out = append(out, line[:len(line)-len(rest)]...)
		if value := strings.Fields(string(cutExemplar(rest))); len(value) > 0 {
			out = append(out, ' ')
			out = append(out, value[0]...)
		}
		out = append(out, '\n')
	}
	return out
}

// omType is the text-format TYPE line for an OpenMetrics family, or "" to
// leave the family untyped.
func omType(family, kind string) string {
	if strings.HasPrefix(family, `"`) {
		return "" // a quoted UTF-8 name: leave it untyped rather than mangle it
	}
	switch kind {
	case "counter":
		return "# TYPE " + family + "_total counter"
	case "gauge", "histogram", "summary":
		return "# TYPE " + family + " " + kind
	case "unknown":
		return "# TYPE " + family + " untyped"
	}
	return ""
}

// splitSample splits a sample line after its name and label set; rest holds
// the value, timestamp and exemplar. Quoted strings (label values, UTF-8
// names) may contain any of '{', '}', '#' and escaped quotes.
func splitSample(line []byte) (name string, rest []byte) {
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	name = string(line[:i])
	if i == len(line) || line[i] != '{' {
		return name, line[i:]
	}
	inQuote := false
	for j := i + 1; j < len(line); j++ {
		switch c := line[j]; {
		case inQuote && c == '\\':
			j++ // skip the escaped byte
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return name, line[j+1:]
		}
	}
	return name, nil // unterminated label set: keep the line whole
}

// cutExemplar drops " # {...} value [ts]" from the tail of a sample line.
func cutExemplar(rest []byte) []byte {
	if i := bytes.IndexByte(rest, '#'); i >= 0 {
		return rest[:i]
	}
	return rest
}

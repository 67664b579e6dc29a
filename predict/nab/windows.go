package nab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Window is one labelled anomaly window, inclusive at both ends.
type Window struct {
	Start time.Time
	End   time.Time
}

// Windows maps a data file's path relative to the corpus root, such as
// "realTraffic/speed_6005.csv", to its windows in time order. A file with no
// anomaly has an empty list.
type Windows map[string][]Window

// maxWindowsBytes bounds what ReadWindows accepts; NAB's full
// combined_windows.json is about 20 KiB.
const maxWindowsBytes = 16 << 20

// ReadWindows reads NAB's windows.json (combined_windows.json in NAB):
// an object whose keys are file paths and whose values are lists of
// [start, end] timestamp pairs. Each window must have start <= end, and a
// file's windows must be in time order and must not overlap.
func ReadWindows(r io.Reader) (Windows, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxWindowsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read NAB windows: %w", err)
	}
	if len(data) > maxWindowsBytes {
		return nil, fmt.Errorf("read NAB windows: larger than %d bytes", maxWindowsBytes)
	}
	var raw map[string][][]string
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("read NAB windows: want an object of \"file.csv\": [[start, end], ...]: %w", err)
	}
	if raw == nil {
		return nil, errors.New("read NAB windows: want an object of \"file.csv\": [[start, end], ...], got null")
	}
	ws := make(Windows, len(raw))
	for name, pairs := range raw {
		if name == "" {
			return nil, errors.New("read NAB windows: empty file name")
		}
		list := make([]Window, 0, len(pairs))
		for i, pair := range pairs {
			if len(pair) != 2 {
				return nil, fmt.Errorf("read NAB windows: %s window %d: want [start, end], got %d values", name, i, len(pair))
			}
			start, err := ParseTime(pair[0])
			if err != nil {
				return nil, fmt.Errorf("read NAB windows: %s window %d start: %w", name, i, err)
			}
			end, err := ParseTime(pair[1])
			if err != nil {
				return nil, fmt.Errorf("read NAB windows: %s window %d end: %w", name, i, err)
			}
			list = append(list, Window{Start: start, End: end})
		}
		if err := checkWindows(list); err != nil {
			return nil, fmt.Errorf("read NAB windows: %s: %w", name, err)
		}
		ws[name] = list
	}
	return ws, nil
}

// checkWindows enforces what the scorer relies on: each window is ordered,
// and the list is in time order without overlap, so a row is in at most one
// window and "the preceding window" is well defined.
func checkWindows(ws []Window) error {
	for i, w := range ws {
		if w.End.Before(w.Start) {
			return fmt.Errorf("window %d ends (%s) before it starts (%s)", i, FormatTime(w.End), FormatTime(w.Start))
		}
		if i > 0 && !w.Start.After(ws[i-1].End) {
			return fmt.Errorf("window %d starts at %s, not after window %d ends at %s: windows must be in time order and must not overlap",
				i, FormatTime(w.Start), i-1, FormatTime(ws[i-1].End))
		}
	}
	return nil
}

package nab

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// ListSeries names the data files of a corpus directory: the files of its
// windows.json when it has one (the corpus as NAB defines it), otherwise
// every .csv file below it. Names are slash-separated paths relative to the
// root, sorted.
func ListSeries(fsys fs.FS) ([]string, error) {
	if f, err := fsys.Open("windows.json"); err == nil {
		ws, err := ReadWindows(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(ws))
		for name := range ws {
			names = append(names, name)
		}
		slices.Sort(names)
		return names, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list series: %w", err)
	}
	var names []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.EqualFold(path.Ext(p), ".csv") {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list series: %w", err)
	}
	if len(names) == 0 {
		return nil, errors.New("list series: no .csv file found")
	}
	return names, nil
}

// ResultPath is where NAB keeps a detector's result for a data file:
// <detector>/<category>/<detector>_<file>.
func ResultPath(detector, name string) string {
	dir, file := path.Split(name)
	return path.Join(detector, dir, detector+"_"+file)
}

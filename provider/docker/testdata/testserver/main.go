// Command testserver is the instance the docker provider's tests run in a
// container: GET /healthz answers 200, GET /data serves DATA_DIR/data and
// GET /env/NAME the value of an environment variable. It is built
// statically by the tests (CGO_ENABLED=0) so that it runs FROM scratch.
package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: testserver ADDR DATA_DIR")
		os.Exit(2)
	}
	addr, dataDir := os.Args[1], os.Args[2]
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /data", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dataDir, "data"))
	})
	mux.HandleFunc("GET /env/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(r.PathValue("name")))
	})
	if err := http.ListenAndServe(addr, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

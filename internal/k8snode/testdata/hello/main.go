// Command hello is the test image of internal/k8snode: a static HTTP server
// on :8080 that answers with its pod name, logs each request to stdout, and
// dials a TCP address on request (/dial?addr=host:port) to show what pods
// reach.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	log.SetOutput(os.Stdout)
	name, _ := os.Hostname()
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	http.HandleFunc("/dial", func(w http.ResponseWriter, r *http.Request) {
		addr := r.URL.Query().Get("addr")
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		c.Close()
		fmt.Fprintf(w, "dialed %s\n", addr)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s from %s", r.Method, r.URL.Path, r.RemoteAddr)
		fmt.Fprintf(w, "hello from %s\n", name)
	})
	log.Printf("hello %s listening on :8080", name)
	log.Fatal(http.ListenAndServe(":8080", nil))
}

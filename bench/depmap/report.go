package main

import (
	"fmt"
	"slices"

	"github.com/phoenixsre/phoenix/depmap/depmaptest"
)

// report prints the ingestion figures, their ratio and the edge sets.
func report(w *workload, ph, jr *result) {
	fmt.Println("## Ingestion through the OTLP/HTTP receiver")
	fmt.Println()
	fmt.Println("| receiver | spans/s (median) | rounds |")
	fmt.Println("|---|---:|---|")
	for _, r := range []*result{ph, jr} {
		if r != nil {
			fmt.Printf("| %s | %.0f | %s |\n", r.name, r.median(), rounds(r.spansPerS))
		}
	}
	fmt.Println()
	if jr != nil {
		fmt.Printf("ratio Phoenix / Jaeger: %.2fx\n\n", ph.median()/jr.median())
	}
	fmt.Printf("Phoenix's heap after ingesting %d spans (graph, index, waiting spans): %.1f MB\n\n", w.spans, ph.heapMB)

	fmt.Println("## Edges over the same spans")
	fmt.Println()
	truth := map[string]bool{}
	for _, e := range depmaptest.ShopEdges {
		truth[edgeString(e.From, e.To, e.Async)] = true
	}
	fmt.Printf("Phoenix: %s (%s)\n\n", ph.edges, ph.extraNotes)
	var phantom, missed []string
	for _, e := range ph.edges {
		if !truth[e] {
			phantom = append(phantom, e)
		}
	}
	for e := range truth {
		if !slices.Contains(ph.edges, e) {
			missed = append(missed, e)
		}
	}
	fmt.Printf("Phoenix against the known topology: %d of %d true edges, missed %v, phantom %v\n\n", len(truth)-len(missed), len(truth), missed, phantom)
	if jr == nil {
		return
	}
	slices.Sort(jr.edges)
	fmt.Printf("Jaeger: %s\n\n", jr.edges)
	var notInPhoenix []string
	for _, e := range jr.edges {
		if !slices.Contains(ph.edges, e) && !slices.Contains(ph.edges, e+"=>") {
			notInPhoenix = append(notInPhoenix, e)
		}
	}
	fmt.Printf("Jaeger's edges Phoenix lacks: %v (Phoenix finds %d edges, Jaeger %d)\n\n", notInPhoenix, len(ph.edges), len(jr.edges))
}

func rounds(v []float64) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%.0f", x)
	}
	return s
}

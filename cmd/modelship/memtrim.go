package main

import (
	"log/slog"
	"time"

	"github.com/modelship/modelship/internal/memtrim"
)

// startupSettle is how long after start-up the executable's start-up-only
// pages are given back (internal/memtrim).
const startupSettle = 2 * time.Second

// releaseStartupPages gives back the pages of the executable touched only
// while starting (package initialization of everything linked into the one
// binary), after a short settle time; see internal/memtrim.
func releaseStartupPages(log *slog.Logger) {
	go func() {
		time.Sleep(startupSettle)
		if _, err := memtrim.ReleaseExecutablePages(); err != nil {
			log.Debug("could not release start-up pages", "err", err)
		}
	}()
}

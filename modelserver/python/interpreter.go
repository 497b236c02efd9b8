package python

import (
	"context"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// DefaultInterpreter chooses the Python to use when neither Config.Python
// nor MODELSHIP_PYTHON names one: the first of python3 on PATH,
// /usr/bin/python3 and /usr/local/bin/python3 that can import numpy (what
// almost every scoring script needs), else the first that exists. A
// machine often has several Pythons (pyenv, the distribution's), and only
// one of them has the scientific packages. The probe runs once per
// process.
func DefaultInterpreter() string {
	defaultOnce.Do(func() { defaultPython = detectInterpreter() })
	return defaultPython
}

var (
	defaultOnce   sync.Once
	defaultPython string
)

func detectInterpreter() string {
	var found []string
	seen := map[string]bool{}
	for _, c := range []string{"python3", "/usr/bin/python3", "/usr/local/bin/python3"} {
		p, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		if real, err := filepath.EvalSymlinks(p); err == nil && !seen[real] {
			seen[real] = true
			found = append(found, p)
		}
	}
	for _, p := range found {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := exec.CommandContext(ctx, p, "-c", "import numpy").Run()
		cancel()
		if err == nil {
			return p
		}
	}
	if len(found) > 0 {
		return found[0]
	}
	return "python3"
}

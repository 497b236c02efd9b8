package python

import (
	"os/exec"
	"testing"
)

func TestDefaultInterpreterPrefersNumpy(t *testing.T) {
	p := DefaultInterpreter()
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("DefaultInterpreter() = %q, not runnable: %v", p, err)
	}
	// When any candidate has numpy, the choice must be one that has it.
	anyNumpy := false
	for _, c := range []string{"python3", "/usr/bin/python3", "/usr/local/bin/python3"} {
		if q, err := exec.LookPath(c); err == nil && exec.Command(q, "-c", "import numpy").Run() == nil {
			anyNumpy = true
		}
	}
	if anyNumpy && exec.Command(p, "-c", "import numpy").Run() != nil {
		t.Fatalf("DefaultInterpreter() = %q cannot import numpy, though another candidate can", p)
	}
}

package modelship

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

// Legacy runtimes of an inference config (spec §2.1), matched
// case-insensitively and stored in this spelling.
var inferenceRuntimes = []string{"python", "spark-py", "python-slim"}

// CUDA versions an inference config may name (spec §2.1).
var cudaVersions = []string{"9.0", "9.1", "10.0"}

// InferenceConfig is Azure ML's inferenceconfig.json (spec §2.1) plus
// modelship's pythonInterpreter. Build one with ParseInferenceConfig, which
// validates it; the accessor methods return paths resolved against the
// config file's directory.
type InferenceConfig struct {
	// EntryScript is the score.py, relative to SourceDirectory when that
	// is given. Required; only .py files are accepted.
	EntryScript string `json:"entryScript,omitempty"`
	// SourceDirectory is the folder shipped with the service.
	SourceDirectory string `json:"sourceDirectory,omitempty"`
	// Environment is Azure's Environment object, kept as given. The parts
	// modelship uses are in Env after parsing.
	Environment json.RawMessage `json:"environment,omitempty"`

	// Legacy fields; none may be combined with Environment.
	Runtime              string             `json:"runtime,omitempty"`
	CondaFile            string             `json:"condaFile,omitempty"`
	ExtraDockerfileSteps string             `json:"extraDockerfileSteps,omitempty"`
	EnableGPU            bool               `json:"enableGpu,omitempty"`
	BaseImage            string             `json:"baseImage,omitempty"`
	BaseImageRegistry    *BaseImageRegistry `json:"baseImageRegistry,omitempty"`
	CUDAVersion          string             `json:"cudaVersion,omitempty"`
	// SchemaFile is the legacy image configuration's schema file; accepted
	// (MLOpsPython's inference_config.yml carries it) without effect.
	SchemaFile string `json:"schemaFile,omitempty"`

	Description string `json:"description,omitempty"`

	// PythonInterpreter (modelship extension) is the Python that runs the
	// entry script: a path (relative to the config file's directory) such
	// as ".venv/bin/python", or a command name looked up on PATH.
	PythonInterpreter string `json:"pythonInterpreter,omitempty"`

	// Env is what modelship reads from Environment; nil without one.
	Env *AzureEnvironment `json:"-"`

	baseDir     string
	sourceDir   string // resolved, absolute when baseDir was given
	entryScript string // resolved
	python      string // resolved interpreter; "" for the runtime's default
	warnings    []string
}

// BaseImageRegistry is the legacy registry of a custom base image.
type BaseImageRegistry struct {
	Address  string `json:"address,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// AzureEnvironment is the part of an Azure ML Environment object modelship
// uses. The rest of the object is accepted and not used.
type AzureEnvironment struct {
	Name                    string
	Version                 string
	InterpreterPath         string // python.interpreterPath
	UserManagedDependencies bool   // python.userManagedDependencies
	EnvironmentVariables    map[string]string
	BaseImage               string // docker.baseImage
}

// ParseInferenceConfig parses and validates an inferenceconfig.json. baseDir
// is the directory of the config file: relative paths are resolved against
// it (falling back to the working directory, as Azure's CLI does, with a
// warning) and the entry script, source directory and other named files
// must exist. With an empty baseDir nothing is looked up on disk. All
// problems are returned at once in one EINVALID error.
func ParseInferenceConfig(data []byte, baseDir string) (*InferenceConfig, error) {
	root, err := cfgDecodeObject(data, "inference config")
	if err != nil {
		return nil, err
	}
	var p cfgProblems
	cfgMoveAlias(root, root, "extraDockerFileSteps", "extraDockerfileSteps", "extraDockerFileSteps", "extraDockerfileSteps", &p)
	t := reflect.TypeOf(InferenceConfig{})
	w := cfgSchemaWalker{kwargs: inferenceKwargs, all: cfgAllPaths(t, "")}
	w.walk("", root, t, &p)
	if len(p) > 0 {
		return nil, p.err("inference config")
	}
	var c InferenceConfig
	if err := cfgRemarshal(root, &c); err != nil {
		return nil, err
	}
	c.baseDir = baseDir
	c.validate(&p)
	if err := p.err("inference config"); err != nil {
		return nil, err
	}
	return &c, nil
}

// inferenceKwargs maps InferenceConfig's Python parameters to JSON keys.
var inferenceKwargs = map[string]string{
	"entry_script":            "entryScript",
	"source_directory":        "sourceDirectory",
	"conda_file":              "condaFile",
	"extra_docker_file_steps": "extraDockerfileSteps",
	"enable_gpu":              "enableGpu",
	"base_image":              "baseImage",
	"base_image_registry":     "baseImageRegistry",
	"cuda_version":            "cudaVersion",
}

// Warnings lists what the config asks for that has no effect here, so that
// the CLI can print it.
func (c *InferenceConfig) Warnings() []string { return c.warnings }

// SourceDirPath returns the resolved source directory, or "" when the
// config gives none (then only the entry script is shipped, as in Azure).
func (c *InferenceConfig) SourceDirPath() string { return c.sourceDir }

// EntryScriptPath returns the resolved path of the entry script.
func (c *InferenceConfig) EntryScriptPath() string { return c.entryScript }

// EntryScriptInSource returns the entry script relative to the source
// directory, with '/' separators (as it is named inside the shipped folder).
// Without a source directory it is the script's file name.
func (c *InferenceConfig) EntryScriptInSource() string {
	if c.SourceDirectory == "" {
		return filepath.Base(cfgSlashes(c.EntryScript))
	}
	return filepath.ToSlash(filepath.Clean(cfgSlashes(c.EntryScript)))
}

// PythonInterpreterPath returns the Python to run the entry script with:
// pythonInterpreter, else environment.python.interpreterPath when it is not
// Azure's default "python"; "" means the runtime's default interpreter.
func (c *InferenceConfig) PythonInterpreterPath() string { return c.python }

// EnvironmentVariables returns environment.environmentVariables (nil if
// none).
func (c *InferenceConfig) EnvironmentVariables() map[string]string {
	if c.Env == nil {
		return nil
	}
	return c.Env.EnvironmentVariables
}

func (c *InferenceConfig) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

func (c *InferenceConfig) validate(p *cfgProblems) {
	if len(c.Description) > MaxDescriptionLen {
		p.add("description is %d characters long; at most %d are allowed", len(c.Description), MaxDescriptionLen)
	}

	if c.SchemaFile != "" {
		c.warn("schemaFile has no effect: the swagger comes from run()'s inference-schema decorators, or from a swagger.json in the source directory")
	}
	// Environment and the legacy fields exclude each other.
	hasEnv := len(c.Environment) > 0 && string(c.Environment) != "null"
	var envName string
	if hasEnv && json.Unmarshal(c.Environment, &envName) == nil {
		// A name instead of an object: a registered Azure ML environment
		// (MLOpsPython's inference_config.yml has "environment:
		// diabetes_regression" next to runtime and condaFile).
		hasEnv = false
		c.Environment = nil
		c.warn("environment %q names a registered Azure ML environment; there is no environment registry here: the entry script runs with pythonInterpreter, else the default Python (docs/python-environments.md)", envName)
	}
	if hasEnv {
		for _, f := range []struct {
			name  string
			given bool
		}{
			{"runtime", c.Runtime != ""},
			{"condaFile", c.CondaFile != ""},
			{"extraDockerfileSteps", c.ExtraDockerfileSteps != ""},
			{"enableGpu", c.EnableGPU},
			{"cudaVersion", c.CUDAVersion != ""},
			{"baseImage", c.BaseImage != ""},
			{"baseImageRegistry", c.BaseImageRegistry != nil},
		} {
			if f.given {
				p.add("environment and %s cannot be combined; with an environment only entryScript, sourceDirectory, description and pythonInterpreter may be given (move %s into the environment or drop the environment)", f.name, f.name)
			}
		}
		c.parseEnvironment(p)
	}
	if c.Runtime != "" {
		if r, ok := cfgOneOf(c.Runtime, inferenceRuntimes); ok {
			c.Runtime = r
			if r == "spark-py" {
				c.warn("runtime \"spark-py\": the entry script runs with plain Python; pyspark must already be installed in the interpreter")
			}
		} else {
			p.add("runtime %q is not supported; use one of %s (any letter case)", c.Runtime, strings.Join(inferenceRuntimes, ", "))
		}
	}
	if c.CUDAVersion != "" {
		if _, ok := cfgOneOf(c.CUDAVersion, cudaVersions); !ok {
			p.add("cudaVersion %q is not supported; use one of %s", c.CUDAVersion, strings.Join(cudaVersions, ", "))
		} else {
			c.warn("cudaVersion has no effect: replicas use the CUDA installed on the machine; GPUs are allocated with gpuCores in the deployment config")
		}
	}
	if c.EnableGPU {
		c.warn("enableGpu has no effect: it selects a GPU base image in Azure; GPUs are allocated with gpuCores in the deployment config")
	}
	if c.BaseImage != "" || c.BaseImageRegistry != nil {
		c.warn("baseImage and baseImageRegistry have no effect: replicas run as processes on this machine, not in containers")
	}

	// Paths.
	if c.SourceDirectory != "" {
		if dir, ok := c.resolve(p, "sourceDirectory", c.SourceDirectory, "", true); ok {
			c.sourceDir = dir
		}
	}
	switch {
	case c.EntryScript == "":
		p.add("entryScript is required: name the Python scoring script (for example \"score.py\"); for a no-code deploy of a single ONNX, ScikitLearn or TensorFlow model leave out the inference config entirely")
	case !strings.HasSuffix(strings.ToLower(c.EntryScript), ".py"):
		p.add("entryScript %q is not a .py file; only Python drivers are supported", c.EntryScript)
	case c.SourceDirectory != "" && !filepath.IsLocal(cfgSlashes(c.EntryScript)):
		p.add("entryScript %q must be a relative path inside sourceDirectory %q (it is resolved against it and shipped from it)", c.EntryScript, c.SourceDirectory)
	case c.SourceDirectory != "":
		if c.sourceDir != "" {
			if f, ok := c.resolve(p, "entryScript", c.EntryScript, c.sourceDir, false); ok {
				c.entryScript = f
			}
		} else if c.baseDir == "" {
			c.entryScript = filepath.Join(cfgSlashes(c.SourceDirectory), cfgSlashes(c.EntryScript))
		}
	default:
		if f, ok := c.resolve(p, "entryScript", c.EntryScript, "", false); ok {
			c.entryScript = f
		}
	}
	// Legacy files are relative to sourceDirectory when given.
	for _, f := range []struct{ name, path, what string }{
		{"condaFile", c.CondaFile, "conda packages are not installed by modelship; the Python interpreter must already provide them"},
		{"extraDockerfileSteps", c.ExtraDockerfileSteps, "replicas run as processes on this machine, not in containers"},
	} {
		if f.path == "" {
			continue
		}
		if c.baseDir != "" && (c.sourceDir != "" || c.SourceDirectory == "") {
			c.resolve(p, f.name, f.path, c.sourceDir, false)
		}
		c.warn("%s has no effect: %s", f.name, f.what)
	}

	// The interpreter.
	py := c.PythonInterpreter
	if c.Env != nil && c.Env.InterpreterPath != "" && c.Env.InterpreterPath != "python" {
		if py != "" && py != c.Env.InterpreterPath {
			p.add("pythonInterpreter %q and environment.python.interpreterPath %q disagree; give one of them", py, c.Env.InterpreterPath)
		}
		if py == "" {
			py = c.Env.InterpreterPath
		}
	}
	if py != "" {
		field := "pythonInterpreter"
		if c.PythonInterpreter == "" {
			field = "environment.python.interpreterPath"
		}
		if strings.ContainsAny(py, `/\`) { // a path, not a command name
			if f, ok := c.resolve(p, field, py, "", false); ok {
				c.python = f
			}
		} else {
			c.python = py
		}
	}
}

// resolve resolves a path given in the config. within is the directory it is
// relative to ("" for the config file's directory). It reports a problem when
// the path does not exist or is of the wrong kind. Without a baseDir it only
// joins the path.
func (c *InferenceConfig) resolve(p *cfgProblems, field, path, within string, wantDir bool) (string, bool) {
	path = cfgSlashes(path)
	if c.baseDir == "" {
		if within != "" && !filepath.IsAbs(path) {
			path = filepath.Join(within, path)
		}
		return filepath.Clean(path), true
	}
	var candidates []string
	switch {
	case filepath.IsAbs(path):
		candidates = []string{path}
	case within != "":
		candidates = []string{filepath.Join(within, path)}
	default:
		candidates = []string{filepath.Join(c.baseDir, path)}
		if wd, err := os.Getwd(); err == nil {
			if abs, err := filepath.Abs(c.baseDir); err == nil && filepath.Clean(abs) != filepath.Clean(wd) {
				candidates = append(candidates, filepath.Join(wd, path))
			}
		}
	}
	for i, cand := range candidates {
		st, err := os.Stat(cand)
		if err != nil {
			continue
		}
		if wantDir != st.IsDir() {
			kind := "a file"
			if wantDir {
				kind = "a directory"
			}
			p.add("%s %q (%s) is not %s", field, path, cand, kind)
			return "", false
		}
		if abs, err := filepath.Abs(cand); err == nil {
			cand = abs
		}
		if i > 0 {
			c.warn("%s %q was found relative to the working directory, not to the config file's directory; it works (as in Azure's CLI) but paths relative to the config file are preferred", field, path)
		}
		return cand, true
	}
	where := "relative to the config file's directory " + c.baseDir
	if filepath.IsAbs(path) {
		where = "(absolute path)"
	} else if within != "" {
		where = "relative to sourceDirectory " + within
	}
	p.add("%s %q does not exist %s", field, path, where)
	return "", false
}

// parseEnvironment picks the parts of an Azure Environment object that
// modelship uses, and warns about the parts it cannot honour.
func (c *InferenceConfig) parseEnvironment(p *cfgProblems) {
	var env map[string]any
	dec := json.NewDecoder(strings.NewReader(string(c.Environment)))
	dec.UseNumber()
	if err := dec.Decode(&env); err != nil || env == nil {
		p.add("environment: expected an Azure ML Environment object ({...})")
		return
	}
	e := &AzureEnvironment{}
	e.Name = cfgEnvString(p, env, "environment", "name")
	if v, ok := env["version"].(json.Number); ok { // some tools write the version as a number
		e.Version = string(v)
	} else {
		e.Version = cfgEnvString(p, env, "environment", "version")
	}
	if ev := cfgEnvObject(p, env, "environment", "environmentVariables"); ev != nil {
		e.EnvironmentVariables = map[string]string{}
		for _, k := range cfgSortedKeys(ev) {
			switch v := ev[k].(type) {
			case string:
				e.EnvironmentVariables[k] = v
			case json.Number:
				e.EnvironmentVariables[k] = string(v)
			case bool:
				e.EnvironmentVariables[k] = fmt.Sprint(v)
			default:
				p.add("environment.environmentVariables.%s: expected a string, got %s", k, cfgDescribeJSON(ev[k]))
				continue
			}
			if k == "" || strings.ContainsAny(k, "=\x00") {
				p.add("environment.environmentVariables: %q is not a valid variable name (no '=' or NUL, not empty)", k)
			}
		}
	}
	if py := cfgEnvObject(p, env, "environment", "python"); py != nil {
		e.InterpreterPath = cfgEnvString(p, py, "environment.python", "interpreterPath")
		if v, ok := py["userManagedDependencies"]; ok && v != nil {
			b, ok := v.(bool)
			if !ok {
				p.add("environment.python.userManagedDependencies: expected true or false, got %s", cfgDescribeJSON(v))
			}
			e.UserManagedDependencies = b
		}
		if !e.UserManagedDependencies {
			if pkgs := condaPackages(py["condaDependencies"]); len(pkgs) > 0 {
				shown := pkgs
				if len(shown) > 10 {
					shown = append(shown[:10:10], fmt.Sprintf("and %d more", len(pkgs)-10))
				}
				c.warn("environment.python.condaDependencies is not installed by modelship (%s); the Python interpreter must already provide these packages (point pythonInterpreter at a virtualenv or conda env that has them)", strings.Join(shown, ", "))
			}
			for _, k := range []string{"condaDependenciesFile", "baseCondaEnvironment"} {
				if s, ok := py[k].(string); ok && s != "" {
					c.warn("environment.python.%s has no effect: conda environments are not created here; the Python interpreter must already provide the packages", k)
				}
			}
		}
	}
	if d := cfgEnvObject(p, env, "environment", "docker"); d != nil {
		e.BaseImage = cfgEnvString(p, d, "environment.docker", "baseImage")
		dockerfile := cfgEnvString(p, d, "environment.docker", "baseDockerfile")
		if e.BaseImage != "" && dockerfile != "" {
			p.add("environment.docker.baseImage and environment.docker.baseDockerfile cannot both be set; give one of them")
		}
		if e.BaseImage != "" || dockerfile != "" {
			c.warn("environment.docker has no effect: replicas run as processes on this machine, not in containers")
		}
	}
	c.Env = e
}

// condaPackages lists the package specs of a condaDependencies object
// ({"dependencies": ["python=3.8", {"pip": ["numpy"]}]}).
func condaPackages(v any) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	deps, _ := m["dependencies"].([]any)
	var out []string
	for _, d := range deps {
		switch x := d.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			for _, k := range cfgSortedKeys(x) {
				if list, ok := x[k].([]any); ok {
					for _, s := range list {
						if s, ok := s.(string); ok {
							out = append(out, s)
						}
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func cfgEnvString(p *cfgProblems, m map[string]any, path, key string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		p.add("%s.%s: expected a string, got %s", path, key, cfgDescribeJSON(v))
	}
	return s
}

func cfgEnvObject(p *cfgProblems, m map[string]any, path, key string) map[string]any {
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		p.add("%s.%s: expected an object ({...}), got %s", path, key, cfgDescribeJSON(v))
	}
	return o
}

// cfgOneOf matches s case-insensitively against allowed and returns the
// allowed spelling.
func cfgOneOf(s string, allowed []string) (string, bool) {
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return a, true
		}
	}
	return "", false
}

// cfgSlashes accepts Windows-style separators in config paths.
func cfgSlashes(p string) string {
	return filepath.FromSlash(strings.ReplaceAll(p, `\`, "/"))
}

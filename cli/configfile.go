package cli

import (
	"bytes"
	"encoding/json"
	"os"

	"sigs.k8s.io/yaml"

	"github.com/modelship/modelship"
)

// readConfigFile reads one of Azure's config files (a deployment or an
// inference config) and returns it as JSON. Azure's CLI took them as JSON or
// YAML (Microsoft's MLOps samples ship deployment_config_aks.yml and
// inference_config.yml), so a YAML file is converted here; a UTF-8 byte
// order mark, as Windows editors write, is dropped. what names the file in
// errors ("deployment config").
func readConfigFile(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, modelship.Errorf(modelship.EINVALID, "%s %q cannot be read: %v", what, path, err)
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 || json.Valid(trimmed) {
		return b, nil
	}
	j, yerr := yaml.YAMLToJSON(b)
	if yerr == nil && bytes.HasPrefix(bytes.TrimSpace(j), []byte("{")) {
		return j, nil
	}
	if trimmed[0] == '{' || yerr == nil {
		// JSON that does not parse: the JSON parser's message, with its
		// line and column, is the useful one.
		return b, nil
	}
	return nil, modelship.Errorf(modelship.EINVALID, "%s %q is neither JSON nor YAML: %v", what, path, yerr)
}

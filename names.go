package modelship

import (
	"regexp"
)

// Limits on names and free text.
const (
	MaxModelNameLen   = 255
	MaxDescriptionLen = 4096
	MaxTagKeyLen      = 128
	MaxTagValueLen    = 1024
	MaxTags           = 64
)

var (
	modelNameRE     = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	workspaceNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	tagKeyRE        = regexp.MustCompile(`^[A-Za-z0-9_.:/-]+$`)
)

// ValidateModelName checks a model name: 1 to 255 characters, letters,
// digits, '-', '_' and '.', and not "." or "..".
func ValidateModelName(name string) error {
	switch {
	case name == "":
		return Errorf(EINVALID, "model name is empty; use 1 to %d letters, digits, '-', '_' or '.'", MaxModelNameLen)
	case len(name) > MaxModelNameLen:
		return Errorf(EINVALID, "model name %.40q... is %d characters long; at most %d are allowed", name, len(name), MaxModelNameLen)
	case !modelNameRE.MatchString(name):
		return Errorf(EINVALID, "model name %q is invalid; use only letters, digits, '-', '_' and '.'", name)
	case name == "." || name == "..":
		return Errorf(EINVALID, "model name %q is reserved", name)
	}
	return nil
}

// ValidateWorkspaceName checks a workspace name: 1 to 63 lowercase letters,
// digits and '-', starting and ending with a letter or digit.
func ValidateWorkspaceName(name string) error {
	if name == "" || len(name) > 63 || !workspaceNameRE.MatchString(name) {
		return Errorf(EINVALID, "workspace name %q is invalid; use 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// ValidateTags checks tag or property keys and values.
func ValidateTags(kind string, tags map[string]string) error {
	if len(tags) > MaxTags {
		return Errorf(EINVALID, "%d %ss given; at most %d are allowed", len(tags), kind, MaxTags)
	}
	for k, v := range tags {
		if k == "" || len(k) > MaxTagKeyLen || !tagKeyRE.MatchString(k) {
			return Errorf(EINVALID, "%s key %q is invalid; use 1 to %d letters, digits, '_', '.', ':', '/' or '-'", kind, k, MaxTagKeyLen)
		}
		if len(v) > MaxTagValueLen {
			return Errorf(EINVALID, "%s %q has a value of %d characters; at most %d are allowed", kind, k, len(v), MaxTagValueLen)
		}
	}
	return nil
}

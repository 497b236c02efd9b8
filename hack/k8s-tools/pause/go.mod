module github.com/modelship/modelship/hack/k8s-tools/pause

go 1.26

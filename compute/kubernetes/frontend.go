package kubernetes

// The in-cluster front end: a Deployment running `modelship gateway` in the
// target namespace, behind a Service, that serves scoring traffic for the
// services and endpoint versions of the target. It never talks to the control
// plane: the control plane writes the route table (routes, auth modes, key
// hashes, token public keys, traffic splits, autoscale settings) into a
// Secret, and the front end finds each version's replicas through the
// EndpointSlices of its Kubernetes Service.
const (
	// RoutesSecretName is the Secret holding the target's route table.
	RoutesSecretName = "modelship-routes"
	// RoutesSecretKey is the key of the route table (JSON of
	// modelship.RouteTable, replicas omitted) in that Secret.
	RoutesSecretKey = "routes.json"
	// FrontEndName names the front end's Deployment, Service,
	// ServiceAccount, Role and RoleBinding.
	FrontEndName = "modelship-frontend"
	// FrontEndPort is the port the front end listens on (container and
	// Service port).
	FrontEndPort = 8641
)

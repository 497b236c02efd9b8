package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/telemetry"
)

// table is a compiled, immutable route table. The hot path reads it through
// an atomic pointer without locks; Update builds a new one and swaps it.
type table struct {
	gen     int64
	routes  map[string]*route // by name: services and endpoints share one name space
	pubKeys [][]byte
	keysID  string // fingerprint of pubKeys for the token cache
}

type route struct {
	kind, workspace, name string
	auth                  string
	keyHashes             [][sha256.Size]byte
	audience              string

	versions []*version // in table order
	byName   map[string]*version
	cum      []float64 // cumulative TrafficPercent, parallel to versions
	total    float64
	def      *version // for a route whose shares are all zero
	last     *version // last version with a positive share
	mirrors  []*version
	allowed  string // "blue, green" for messages

	telemetry *telemetry.Writer // nil: App Insights off for the route
}

type version struct {
	route     *route
	name      string
	st        *versionState
	maxConc   int64
	queueWait time.Duration
	timeout   time.Duration
	mirror    float64  // share in [0, 1]
	models    []string // name:version, for telemetry
	ready     []*replica
	all       []replicaInfo
	autoscale *modelship.AutoscaleSettings
}

type replicaInfo struct {
	id, url string
	ready   bool
	rep     *replica
}

// vkey names a version's persistent state.
type vkey struct{ route, version string }

// Update publishes a new route table. The swap is atomic: requests already
// routed finish on the replicas they were given (their counters live on
// past the swap), the next request sees the new table, and requests
// waiting in a queue retry against it at once. A nil table removes every
// route. Invalid entries (bad key hashes, replica URLs, public keys) are
// logged and skipped.
func (g *Gateway) Update(rt *modelship.RouteTable) {
	if rt == nil {
		rt = &modelship.RouteTable{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t := &table{gen: rt.Generation, routes: make(map[string]*route, len(rt.Routes))}
	var kid strings.Builder
	for _, k := range rt.TokenPublicKeys {
		if len(k) != 32 {
			g.log.Warn("gateway: ignoring token public key of wrong size", "size", len(k))
			continue
		}
		t.pubKeys = append(t.pubKeys, slices.Clone(k))
		kid.WriteString(hex.EncodeToString(k))
	}
	t.keysID = kid.String()

	live := map[vkey]bool{}
	liveTelemetry := map[string]bool{}
	for i := range rt.Routes {
		src := &rt.Routes[i]
		if _, dup := t.routes[src.Name]; dup {
			g.log.Warn("gateway: duplicate route name; keeping the first", "route", src.Name)
			continue
		}
		r := &route{
			kind:      src.Kind,
			workspace: src.Workspace,
			name:      src.Name,
			auth:      src.Auth,
			audience:  src.TokenAudience,
			byName:    map[string]*version{},
		}
		if r.kind == "" {
			r.kind = modelship.RouteService
		}
		if r.auth == "" {
			r.auth = modelship.AuthKey // Azure's default on AKS
		}
		if src.AppInsights {
			r.telemetry = g.telem.writer(r.workspace, r.name)
			liveTelemetry[telemetryKey(r.workspace, r.name)] = true
		}
		for _, h := range src.KeyHashes {
			b, err := hex.DecodeString(strings.ToLower(h))
			if err != nil || len(b) != sha256.Size {
				g.log.Warn("gateway: ignoring malformed key hash", "route", src.Name)
				continue
			}
			r.keyHashes = append(r.keyHashes, [sha256.Size]byte(b))
		}
		var names []string
		for j := range src.Versions {
			sv := &src.Versions[j]
			if _, dup := r.byName[sv.Name]; dup || sv.Name == "" {
				g.log.Warn("gateway: duplicate or empty version name; skipped", "route", src.Name, "version", sv.Name)
				continue
			}
			v := g.compileVersion(r, sv)
			live[vkey{r.name, v.name}] = true
			r.versions = append(r.versions, v)
			r.byName[v.name] = v
			names = append(names, v.name)
			if sv.TrafficPercent > 0 {
				r.total += sv.TrafficPercent
				r.last = v
			}
			r.cum = append(r.cum, r.total)
			if sv.IsDefault && r.def == nil {
				r.def = v
			}
			if v.mirror > 0 {
				r.mirrors = append(r.mirrors, v)
			}
		}
		if r.def == nil && len(r.versions) > 0 {
			r.def = r.versions[0]
		}
		r.allowed = strings.Join(names, ", ")
		t.routes[r.name] = r
	}
	for k, st := range g.states {
		if !live[k] {
			delete(g.states, k)
			st.q.notifyAll() // its waiters give up against the new table
		}
	}
	g.table.Store(t)
	g.telem.retain(liveTelemetry)
	for _, r := range t.routes {
		for _, v := range r.versions {
			v.st.q.notifyAll() // replicas may have appeared
		}
	}
}

func (g *Gateway) compileVersion(r *route, sv *modelship.RouteVersion) *version {
	k := vkey{r.name, sv.Name}
	st := g.states[k]
	if st == nil {
		st = g.newVersionState(r.name, sv.Name)
		g.states[k] = st
	}
	v := &version{
		route:     r,
		name:      sv.Name,
		st:        st,
		maxConc:   int64(sv.MaxConcurrentRequestsPerContainer),
		queueWait: sv.MaxQueueWait,
		timeout:   sv.ScoringTimeout,
		mirror:    min(max(sv.MirrorPercent, 0), 100) / 100,
		models:    slices.Clone(sv.Models),
	}
	if v.maxConc <= 0 {
		v.maxConc = DefaultMaxConcurrentRequests
	}
	if v.queueWait <= 0 {
		v.queueWait = DefaultMaxQueueWait
	}
	if v.timeout <= 0 {
		v.timeout = DefaultScoringTimeout
	}
	if sv.Autoscale != nil {
		a := *sv.Autoscale
		v.autoscale = &a
	}
	st.mu.Lock()
	seen := map[string]bool{}
	for _, re := range sv.Replicas {
		key := re.ID + "|" + re.URL
		info := replicaInfo{id: re.ID, url: re.URL, ready: re.Ready}
		u, err := url.Parse(re.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			g.log.Warn("gateway: ignoring replica with a bad URL", "route", r.name, "version", sv.Name, "replica", re.ID, "url", re.URL)
			v.all = append(v.all, info)
			continue
		}
		rep := st.replicas[key]
		if rep == nil {
			rep = &replica{id: re.ID, scheme: u.Scheme, host: u.Host}
			st.replicas[key] = rep
		}
		seen[key] = true
		info.rep = rep
		v.all = append(v.all, info)
		if re.Ready {
			v.ready = append(v.ready, rep)
		}
	}
	for key := range st.replicas {
		if !seen[key] {
			// Requests in flight keep their pointer; forgetting it here
			// only means a replica that comes back starts from zero.
			delete(st.replicas, key)
		}
	}
	st.mu.Unlock()
	return v
}

package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// The Kubernetes manifests (deploy/kubernetes) are checked without a
// cluster or kustomize: the test renders each overlay the way kustomize
// would (the overlays use resources, configMapGenerator and images only,
// no patches), decodes every object strictly into the Kubernetes API
// types, and checks what a fleet needs: the flags each container gets are
// flags of its role that the binary takes, every node shares one
// --seal-delay and one token Secret, the drain ends within the grace
// period, readiness is /readyz, and the edge hashes on the stream over
// headless Services. About 0.1 s.

var updateEdgeConf = flag.Bool("update-edge-conf", false, "rewrite deploy/kubernetes/overlays/fleet/nginx.conf from deploy/nginx.conf")

const k8sDir = repoRoot + "/deploy/kubernetes"

// edgeConfValues fill deploy/nginx.conf for the fleet overlay: the edge
// finds the nodes through their headless Services.
var edgeConfValues = map[string]any{
	"Dir": "/var/cache/emojicast-edge", "Listen": "8080",
	"Pull": []string{"emojicast-pull:8080"}, "Push": []string{"emojicast-push:8080"},
	"TLSListen": "", "Cert": "", "Key": "", "EdgeLog": []string(nil), "EdgeLogSecret": "",
}

// edgeConfHeader starts the rendered file, so that nobody edits it by hand.
const edgeConfHeader = `# deploy/nginx.conf rendered for deploy/kubernetes/overlays/fleet: do not
# edit; change the template and run
#   go test -run TestKubernetesEdge ./cmd/emojicast -args -update-edge-conf
# Dir /var/cache/emojicast-edge (an emptyDir), Listen 8080, Pull and Push the
# headless Services emojicast-pull:8080 and emojicast-push:8080; TLS ends in
# front of the edge (a CDN, a load balancer or an Ingress).

`

// kustomization is the part of kustomize's format the manifests use;
// decoding is strict, so a field this renderer does not apply fails.
type kustomization struct {
	APIVersion         string   `json:"apiVersion"`
	Kind               string   `json:"kind"`
	Resources          []string `json:"resources"`
	ConfigMapGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"configMapGenerator"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// manifests is a rendered overlay, by kind.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	files       []string // every file read
}

// render renders the kustomization in dir into m.
func (m *manifests) render(dir string) error {
	path := filepath.Join(dir, "kustomization.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	m.files = append(m.files, path)
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return fmt.Errorf("%s: not a kustomize.config.k8s.io/v1beta1 Kustomization", path)
	}
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%s lists %s: %w", path, r, err)
		}
		if info.IsDir() {
			err = m.render(p)
		} else {
			err = m.decodeFile(p)
		}
		if err != nil {
			return err
		}
	}
	for _, g := range k.ConfigMapGenerator {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: g.Name}, Data: map[string]string{}}
		for _, f := range g.Files {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				return fmt.Errorf("%s: configMapGenerator %s: %w", path, g.Name, err)
			}
			m.files = append(m.files, filepath.Join(dir, f))
			cm.Data[filepath.Base(f)] = string(b)
		}
		if err := m.addConfigMap(cm); err != nil {
			return err
		}
	}
	for _, img := range k.Images {
		for _, d := range m.deployments {
			for i, c := range d.Spec.Template.Spec.Containers {
				if c.Image == img.Name {
					d.Spec.Template.Spec.Containers[i].Image = img.NewName + ":" + img.NewTag
				}
			}
		}
	}
	return nil
}

func (m *manifests) addConfigMap(cm *corev1.ConfigMap) error {
	if m.configMaps == nil {
		m.configMaps = map[string]*corev1.ConfigMap{}
	}
	if m.configMaps[cm.Name] != nil {
		return fmt.Errorf("two ConfigMaps named %s", cm.Name)
	}
	m.configMaps[cm.Name] = cm
	return nil
}

// decodeFile decodes every object of a YAML file strictly into its API type.
func (m *manifests) decodeFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	m.files = append(m.files, path)
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		obj, err := decodeObject([]byte(doc))
		if err != nil {
			return fmt.Errorf("%s, document %d: %w", path, i+1, err)
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			m.deployments = append(m.deployments, o)
		case *corev1.Service:
			m.services = append(m.services, o)
		case *corev1.ConfigMap:
			err = m.addConfigMap(o)
		case *policyv1.PodDisruptionBudget:
			m.pdbs = append(m.pdbs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.hpas = append(m.hpas, o)
		default:
			err = fmt.Errorf("%T is not expected in an overlay", o)
		}
		if err != nil {
			return fmt.Errorf("%s, document %d: %w", path, i+1, err)
		}
	}
	return nil
}

// decodeObject decodes one object into the API type its apiVersion and
// kind name; unknown fields are errors.
func decodeObject(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	case "v1 Service":
		obj = &corev1.Service{}
	case "v1 ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1 Secret":
		obj = &corev1.Secret{}
	case "policy/v1 PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		obj = &autoscalingv2.HorizontalPodAutoscaler{}
	default:
		return nil, fmt.Errorf("unexpected %s %s", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func renderOverlay(t *testing.T, name string) *manifests {
	t.Helper()
	m := new(manifests)
	if err := m.render(filepath.Join(k8sDir, "overlays", name)); err != nil {
		t.Fatal(err)
	}
	return m
}

// tokenSecret is the Secret every node's token keys come from, as
// base/secret.example.yaml shows it.
func tokenSecret(t *testing.T) *corev1.Secret {
	t.Helper()
	obj, err := decodeObject(readFile(t, filepath.Join(k8sDir, "base", "secret.example.yaml")))
	if err != nil {
		t.Fatalf("base/secret.example.yaml: %v", err)
	}
	s, ok := obj.(*corev1.Secret)
	if !ok {
		t.Fatalf("base/secret.example.yaml holds a %T; want a Secret", obj)
	}
	return s
}

// TestKubernetesOverlays checks each overlay's nodes, Services, budgets and
// autoscalers, and that every YAML file under deploy/kubernetes is either
// in an overlay or the example Secret.
func TestKubernetesOverlays(t *testing.T) {
	secret := tokenSecret(t)
	used := map[string]bool{filepath.Join(k8sDir, "base", "secret.example.yaml"): true}
	for _, overlay := range []string{"single", "fleet"} {
		t.Run(overlay, func(t *testing.T) {
			m := renderOverlay(t, overlay)
			for _, f := range m.files {
				used[f] = true
			}
			checkNodes(t, m, secret)
			checkSelectors(t, m)
		})
	}
	err := filepath.WalkDir(k8sDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !used[path] {
			t.Errorf("%s is in no overlay", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// nodeRoles are the emojicast commands a container may run.
var nodeRoles = map[string]role{"serve": roleServe, "push": rolePush, "pull": rolePull}

// checkNodes checks every emojicast container of m: its flags, probes,
// grace period, scraping, resources and user; and that all share one
// --seal-delay and the token Secret.
func checkNodes(t *testing.T, m *manifests, secret *corev1.Secret) {
	t.Helper()
	sealDelays := map[time.Duration][]string{}
	nodes := 0
	for _, d := range m.deployments {
		pod := d.Spec.Template.Spec
		for _, c := range pod.Containers {
			if !strings.Contains(c.Image, "/emojicast:") {
				continue
			}
			nodes++
			where := d.Name + "/" + c.Name
			if len(c.Args) == 0 {
				t.Errorf("%s: no command in args", where)
				continue
			}
			r, ok := nodeRoles[c.Args[0]]
			if !ok {
				t.Errorf("%s runs emojicast %s; want serve, push or pull", where, c.Args[0])
				continue
			}
			f := containerFlags(t, where, r, c, m, secret)
			sealDelays[f.sealDelay] = append(sealDelays[f.sealDelay], where)
			checkPod(t, where, d, c, f)
		}
	}
	if nodes == 0 {
		t.Fatal("no emojicast containers in the overlay")
	}
	if len(sealDelays) != 1 {
		t.Errorf("nodes disagree on --seal-delay: %v", sealDelays)
	}
}

// containerFlags sets what a container's environment and args give its
// role's flags, as the binary would (the environment first, then args),
// and checks that the binary would take them.
func containerFlags(t *testing.T, where string, r role, c corev1.Container, m *manifests, secret *corev1.Secret) *nodeFlags {
	t.Helper()
	fs, f := nodeFlagSet(r)
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Errorf("%s: envFrom other than a ConfigMap", where)
			continue
		}
		cm := m.configMaps[from.ConfigMapRef.Name]
		if cm == nil {
			t.Errorf("%s: envFrom ConfigMap %s is not in the overlay", where, from.ConfigMapRef.Name)
			continue
		}
		for name, value := range cm.Data {
			if err := setEnvFlag(fs, name, value); err != nil {
				t.Errorf("%s, ConfigMap %s: %v", where, cm.Name, err)
			}
		}
	}
	tokens := map[string]string{}
	for _, e := range c.Env {
		value := e.Value
		if e.ValueFrom != nil {
			ref := e.ValueFrom.SecretKeyRef
			if ref == nil || ref.Name != secret.Name {
				t.Errorf("%s: %s comes from somewhere other than the Secret %s", where, e.Name, secret.Name)
				continue
			}
			if _, ok := secret.StringData[ref.Key]; !ok {
				t.Errorf("%s: %s reads key %s, which the Secret %s lacks", where, e.Name, ref.Key, secret.Name)
			}
			tokens[e.Name] = ref.Key
			value = secret.StringData[ref.Key]
		}
		if err := setEnvFlag(fs, e.Name, value); err != nil {
			t.Errorf("%s: %v", where, err)
		}
	}
	want := map[string]string{"EMOJICAST_TOKEN_SECRET": "token-secret", "EMOJICAST_TOKEN_SECRET_PREVIOUS": "token-secret-previous"}
	if fmt.Sprint(tokens) != fmt.Sprint(want) {
		t.Errorf("%s takes its token keys from %s keys %v; want %v", where, secret.Name, tokens, want)
	}
	if err := parseFlags(fs, c.Args[1:]); err != nil {
		t.Errorf("%s: args %q: %v", where, c.Args, err)
	}
	if r.needsRedis && f.redis == "" {
		t.Errorf("%s runs emojicast %s without --redis", where, r.name)
	}
	if r.push && f.sealDelay <= f.flushInterval {
		t.Errorf("%s: --seal-delay %v must exceed --flush-interval %v", where, f.sealDelay, f.flushInterval)
	}
	return f
}

// checkPod checks a node's pod: readiness on /readyz, a drain the probe
// notices and that ends (with the shutdown) within the grace period,
// Prometheus annotations, resource requests and a non-root user.
func checkPod(t *testing.T, where string, d *appsv1.Deployment, c corev1.Container, f *nodeFlags) {
	t.Helper()
	pod := d.Spec.Template.Spec
	port := containerPort(c, "http")
	if port == 0 {
		t.Errorf("%s has no port named http", where)
	}
	if !strings.HasSuffix(f.listen, fmt.Sprintf(":%d", port)) {
		t.Errorf("%s listens on %q, not on its http port %d", where, f.listen, port)
	}
	p := c.ReadinessProbe
	if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "http" {
		t.Errorf("%s: readiness must be GET /readyz on port http; got %+v", where, p)
	} else if notice := time.Duration(p.PeriodSeconds*max(p.FailureThreshold, 1)) * time.Second; f.drainDelay <= notice {
		t.Errorf("%s: --drain-delay %v is not longer than the readiness probe takes to notice (%v)", where, f.drainDelay, notice)
	}
	grace := time.Duration(0)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	const margin = 5 * time.Second
	if need := f.drainDelay + f.shutdownTimeout + margin; need >= grace {
		t.Errorf("%s: --drain-delay %v + --shutdown-timeout %v + %v is not under terminationGracePeriodSeconds (%v): the kubelet would kill it mid-flush", where, f.drainDelay, f.shutdownTimeout, margin, grace)
	}
	a := d.Spec.Template.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" || a["prometheus.io/port"] != fmt.Sprint(port) {
		t.Errorf("%s: Prometheus annotations %v do not scrape /metrics on port %d", where, a, port)
	}
	req := c.Resources.Requests
	if req.Cpu().IsZero() || req.Memory().IsZero() {
		t.Errorf("%s requests no CPU or memory: %v", where, req)
	}
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Errorf("%s must run as the image's non-root user 65532: %+v", where, sc)
	}
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// checkSelectors checks that every Service, budget and autoscaler of m
// finds what it is for.
func checkSelectors(t *testing.T, m *manifests) {
	t.Helper()
	selects := func(sel map[string]string) []*appsv1.Deployment {
		var ds []*appsv1.Deployment
		for _, d := range m.deployments {
			if len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels)) {
				ds = append(ds, d)
			}
		}
		return ds
	}
	for _, d := range m.deployments {
		if got := selects(d.Spec.Selector.MatchLabels); !slices.Contains(got, d) {
			t.Errorf("Deployment %s's selector does not match its own pods", d.Name)
		}
	}
	for _, s := range m.services {
		ds := selects(s.Spec.Selector)
		if len(ds) != 1 {
			t.Errorf("Service %s selects %d Deployments; want 1", s.Name, len(ds))
			continue
		}
		for _, p := range s.Spec.Ports {
			found := false
			for _, c := range ds[0].Spec.Template.Spec.Containers {
				found = found || containerPort(c, p.TargetPort.String()) != 0
			}
			if !found {
				t.Errorf("Service %s targets port %s, which %s lacks", s.Name, p.TargetPort.String(), ds[0].Name)
			}
		}
	}
	for _, p := range m.pdbs {
		if len(selects(p.Spec.Selector.MatchLabels)) != 1 || p.Spec.MaxUnavailable == nil {
			t.Errorf("PodDisruptionBudget %s must select one Deployment and bound maxUnavailable", p.Name)
		}
	}
	for _, h := range m.hpas {
		ok := false
		for _, d := range m.deployments {
			if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == d.Name {
				ok = d.Spec.Template.Spec.Containers[0].Args[0] == "pull"
			}
		}
		if !ok {
			t.Errorf("HorizontalPodAutoscaler %s must scale the pull Deployment; it scales %+v", h.Name, h.Spec.ScaleTargetRef)
		}
	}
}

// TestKubernetesFleetShape checks what the fleet overlay must have beyond
// what every overlay has: push and pull apart, an edge, a budget per
// Deployment and an autoscaler for pull nodes.
func TestKubernetesFleetShape(t *testing.T) {
	m := renderOverlay(t, "fleet")
	var roles []string
	for _, d := range m.deployments {
		roles = append(roles, d.Spec.Template.Labels["app.kubernetes.io/component"])
	}
	slices.Sort(roles)
	if want := []string{"edge", "pull", "push"}; !slices.Equal(roles, want) {
		t.Errorf("the fleet's Deployments are %v; want %v", roles, want)
	}
	if len(m.pdbs) != len(m.deployments) {
		t.Errorf("%d PodDisruptionBudgets for %d Deployments", len(m.pdbs), len(m.deployments))
	}
	if len(m.hpas) != 1 {
		t.Errorf("%d HorizontalPodAutoscalers; want 1, for pull nodes", len(m.hpas))
	}
}

// TestKubernetesEdge checks the fleet's edge: its configuration is
// deploy/nginx.conf rendered for the cluster (go test -run
// TestKubernetesEdge ./cmd/emojicast -args -update-edge-conf rewrites it), it
// hashes polls and sends on the stream, and its upstreams are headless
// Services of the pull and push pods.
func TestKubernetesEdge(t *testing.T) {
	tmpl, err := template.ParseFiles(filepath.Join(repoRoot, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var rendered bytes.Buffer
	rendered.WriteString(edgeConfHeader)
	if err := tmpl.Execute(&rendered, edgeConfValues); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(k8sDir, "overlays", "fleet", "nginx.conf")
	if *updateEdgeConf {
		if err := os.WriteFile(path, rendered.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := renderOverlay(t, "fleet")
	cm := m.configMaps["emojicast-edge"]
	if cm == nil {
		t.Fatal("the fleet has no emojicast-edge ConfigMap")
	}
	conf := cm.Data["nginx.conf"]
	if conf != rendered.String() {
		t.Fatalf("%s is not deploy/nginx.conf rendered for the cluster: run go test -run TestKubernetesEdge ./cmd/emojicast -args -update-edge-conf", path)
	}
	for upstream, component := range map[string]string{"emojicast_pull": "pull", "emojicast_push": "push"} {
		block := regexp.MustCompile(`(?s)upstream ` + upstream + ` \{(.*?)\n    \}`).FindStringSubmatch(conf)
		if block == nil {
			t.Fatalf("the edge has no upstream %s", upstream)
		}
		if !strings.Contains(block[1], "hash $stream_affinity consistent;") {
			t.Errorf("upstream %s does not hash consistently on the stream", upstream)
		}
		servers := regexp.MustCompile(`(?m)^\s*server ([^:\s]+):(\d+) `).FindAllStringSubmatch(block[1], -1)
		if len(servers) != 1 {
			t.Fatalf("upstream %s has servers %v; want one headless Service", upstream, servers)
		}
		checkHeadless(t, m, servers[0][1], servers[0][2], component)
	}
	for _, d := range m.deployments {
		if d.Name != "emojicast-edge" {
			continue
		}
		mounted := false
		for _, v := range d.Spec.Template.Spec.Volumes {
			mounted = mounted || v.ConfigMap != nil && v.ConfigMap.Name == cm.Name
		}
		if !mounted || !strings.Contains(strings.Join(d.Spec.Template.Spec.Containers[0].Command, " "), "-c /etc/emojicast-edge/nginx.conf") {
			t.Errorf("the edge does not run nginx with the %s ConfigMap", cm.Name)
		}
	}
}

// checkHeadless checks that the Service named name is headless, selects
// the Deployment of the component and serves port.
func checkHeadless(t *testing.T, m *manifests, name, port, component string) {
	t.Helper()
	for _, s := range m.services {
		if s.Name != name {
			continue
		}
		if s.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service %s is not headless: the edge would hash over one address", name)
		}
		if s.Spec.Selector["app.kubernetes.io/component"] != component {
			t.Errorf("Service %s selects %v; want the %s pods", name, s.Spec.Selector, component)
		}
		if len(s.Spec.Ports) != 1 || fmt.Sprint(s.Spec.Ports[0].Port) != port {
			t.Errorf("Service %s ports %v; the edge uses %s", name, s.Spec.Ports, port)
		}
		return
	}
	t.Error(errors.New("the edge's upstream " + name + " is no Service of the fleet"))
}

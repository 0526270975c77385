package graph

import (
	"errors"
	"fmt"
)

// Kind says where a tensor's memory lives and who writes it.
type Kind int

const (
	// Activation tensors are produced by ops; the planner reuses their memory.
	Activation Kind = iota
	// Input tensors are written by the host before each step (tokens, targets).
	Input
	// Param tensors are trainable weights; persistent.
	Param
	// State tensors are persistent but not trained: optimizer moments, KV
	// caches, balancing biases.
	State
	// Const tensors are uploaded once when the plan is compiled.
	Const
)

func (k Kind) String() string {
	return [...]string{"activation", "input", "param", "state", "const"}[k]
}

// Persistent reports whether the tensor lives outside the reused arena.
func (k Kind) Persistent() bool { return k != Activation }

// Tensor is a node's output or a leaf of the graph. Shapes are static.
type Tensor struct {
	ID   int
	Name string
	Spec
	Kind Kind
	// NoDecay excludes a parameter from weight decay (norm gains, biases,
	// embeddings unless asked).
	NoDecay bool
	// Role names what kind of parameter this is ("embedding", "norm",
	// "sink", or "" for a plain weight), so optimizers can treat groups
	// differently.
	Role string
	// Grad is the gradient of the loss with respect to this tensor, set by
	// Backward for parameters.
	Grad *Tensor
	// Value holds a Const tensor's data.
	Value *Host
	// Init says how a parameter starts: see Init.
	Init Init
	// Persist keeps an activation out of the reused arena, in a buffer of
	// its own alive for the whole plan: parameter gradients, so that they
	// can be accumulated over micro-batches, inspected, or bound where an
	// arena view cannot be.
	Persist bool
	// Parts, when set, names consecutive row blocks of a parameter or
	// state tensor that is stored as one: a fused projection such as
	// qkv_proj (q_proj, k_proj and v_proj weights stacked along dim 0).
	// Checkpoints hold each part under its own name and shape (rows,
	// Shape[1:]...); see SetParts and Split.
	Parts []Part

	node *Node
	out  int
}

// Part is one named row block of a fused tensor (see Tensor.Parts).
type Part struct {
	Name string
	Rows int
}

// SetParts declares t (a parameter or state tensor of rank ≥ 1) to be the
// row blocks parts stacked in order; their rows must add up to Shape[0]
// and their names must be new in the graph.
func (g *Graph) SetParts(t *Tensor, parts ...Part) {
	if !t.Kind.Persistent() || t.Kind == Const || len(t.Shape) == 0 {
		g.fail(fmt.Errorf("%s: only a parameter or state tensor of rank ≥ 1 can have parts", t.Name))
		return
	}
	rows := 0
	for _, p := range parts {
		if p.Rows <= 0 || p.Name == "" {
			g.fail(fmt.Errorf("%s: part %q of %d rows: want a name and a positive row count", t.Name, p.Name, p.Rows))
			return
		}
		if g.names[p.Name] {
			g.fail(fmt.Errorf("%s: part name %s is already a tensor of the graph", t.Name, p.Name))
			return
		}
		rows += p.Rows
	}
	if rows != t.Shape[0] {
		g.fail(fmt.Errorf("%s: parts of %d rows in all for a tensor of %d", t.Name, rows, t.Shape[0]))
		return
	}
	for _, p := range parts {
		g.names[p.Name] = true
	}
	t.Parts = append([]Part(nil), parts...)
}

// Named is one tensor as a file holds it: a name, a shape and its values.
type Named struct {
	Name  string
	Shape []int
	// Lo and Hi bound the tensor's elements within its graph tensor's flat
	// values.
	Lo, Hi int
}

// Split lists t as checkpoints hold it: one entry per part (see Parts),
// or t itself when it has none.
func (t *Tensor) Split() []Named {
	if len(t.Parts) == 0 {
		return []Named{{Name: t.Name, Shape: t.Shape, Lo: 0, Hi: t.Len()}}
	}
	row := 1
	for _, d := range t.Shape[1:] {
		row *= d
	}
	out := make([]Named, len(t.Parts))
	lo := 0
	for i, p := range t.Parts {
		out[i] = Named{Name: p.Name, Shape: append([]int{p.Rows}, t.Shape[1:]...), Lo: lo, Hi: lo + p.Rows*row}
		lo += p.Rows * row
	}
	return out
}

// Producer is the node that computes this tensor (nil for leaves).
func (t *Tensor) Producer() *Node { return t.node }

func (t *Tensor) String() string { return fmt.Sprintf("%s %s (%s)", t.Name, t.Spec, t.Kind) }

// Init describes a parameter's initial distribution; the runtime draws
// the values from its seed so that the GPU and reference executors, and a
// resumed run, start from the same numbers.
type Init struct {
	Dist string  // "normal" (mean 0, Std), "ones", "zeros"; "" means zeros
	Std  float64 // for "normal"
}

// Node is one op applied to tensors.
type Node struct {
	ID  int
	Op  Op
	In  []*Tensor
	Out []*Tensor
}

// Graph is a static computation: tensors and ops in the order they were
// added, which is a valid topological order.
type Graph struct {
	Nodes   []*Node
	Tensors []*Tensor
	names   map[string]bool
	err     error
}

// New returns an empty graph.
func New() *Graph { return &Graph{names: map[string]bool{}} }

// Err returns the first error met while building. Builders keep going
// after an error (returning placeholder tensors) so model code reads
// straight; check Err once at the end.
func (g *Graph) Err() error { return g.err }

// Fail records a build error, as a bad shape does: block builders outside
// graph (layers, moe) report a bad configuration this way and keep going, so
// model code still reads straight and checks Err once.
func (g *Graph) Fail(err error) { g.fail(err) }

func (g *Graph) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

func (g *Graph) uniqueName(name string) string {
	if !g.names[name] {
		g.names[name] = true
		return name
	}
	for i := 1; ; i++ {
		n := fmt.Sprintf("%s#%d", name, i)
		if !g.names[n] {
			g.names[n] = true
			return n
		}
	}
}

func (g *Graph) leaf(name string, s Spec, k Kind) *Tensor {
	if name == "" {
		g.fail(errors.New("leaf tensors need a name"))
	}
	if k == Param || k == State || k == Input {
		if g.names[name] {
			g.fail(fmt.Errorf("duplicate %s name %q", k, name))
		}
		g.names[name] = true
	} else {
		name = g.uniqueName(name)
	}
	t := &Tensor{ID: len(g.Tensors), Name: name, Spec: Spec{DType: s.DType, Shape: append([]int(nil), s.Shape...)}, Kind: k}
	g.Tensors = append(g.Tensors, t)
	return t
}

// Input declares a tensor the host writes before each run.
func (g *Graph) Input(name string, s Spec) *Tensor { return g.leaf(name, s, Input) }

// Param declares a trainable parameter.
func (g *Graph) Param(name string, s Spec) *Tensor { return g.leaf(name, s, Param) }

// State declares persistent, non-trained memory.
func (g *Graph) State(name string, s Spec) *Tensor { return g.leaf(name, s, State) }

// Constant declares a tensor with a fixed value.
func (g *Graph) Constant(name string, h *Host) *Tensor {
	t := g.leaf(name, h.Spec, Const)
	t.Value = h
	return t
}

// Apply adds a node and returns its outputs. On a shape error it records
// the error (see Err) and returns placeholders so building can continue.
func (g *Graph) Apply(op Op, in ...*Tensor) []*Tensor {
	specs := make([]Spec, len(in))
	for i, t := range in {
		if t == nil {
			g.fail(fmt.Errorf("%s: input %d is nil", op.Name(), i))
			return g.placeholders(1)
		}
		specs[i] = t.Spec
	}
	outs, err := op.Outputs(specs)
	if err != nil {
		g.fail(fmt.Errorf("%s(%s): %w", op.Name(), names(in), err))
		return g.placeholders(1)
	}
	n := &Node{ID: len(g.Nodes), Op: op, In: append([]*Tensor(nil), in...)}
	for i, s := range outs {
		t := &Tensor{ID: len(g.Tensors), Name: g.uniqueName(fmt.Sprintf("%s.%d", op.Name(), n.ID)), Spec: s, Kind: Activation, node: n, out: i}
		if len(outs) > 1 {
			t.Name = g.uniqueName(fmt.Sprintf("%s.%d:%d", op.Name(), n.ID, i))
		}
		g.Tensors = append(g.Tensors, t)
		n.Out = append(n.Out, t)
	}
	g.Nodes = append(g.Nodes, n)
	return n.Out
}

// Apply1 is Apply for single-output ops.
func (g *Graph) Apply1(op Op, in ...*Tensor) *Tensor { return g.Apply(op, in...)[0] }

func (g *Graph) placeholders(n int) []*Tensor {
	out := make([]*Tensor, n)
	for i := range out {
		out[i] = &Tensor{ID: -1, Name: "invalid", Spec: F32(1)}
	}
	return out
}

func names(ts []*Tensor) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		if t == nil {
			s += "nil"
		} else {
			s += t.Name + " " + t.Spec.String()
		}
	}
	return s
}

// Params lists the trainable parameters in declaration order.
func (g *Graph) Params() []*Tensor { return g.byKind(Param) }

// Inputs lists the host-written inputs in declaration order.
func (g *Graph) Inputs() []*Tensor { return g.byKind(Input) }

func (g *Graph) byKind(k Kind) []*Tensor {
	var out []*Tensor
	for _, t := range g.Tensors {
		if t.Kind == k {
			out = append(out, t)
		}
	}
	return out
}

// Lookup finds a leaf tensor by name.
func (g *Graph) Lookup(name string) *Tensor {
	for _, t := range g.Tensors {
		if t.Name == name {
			return t
		}
	}
	return nil
}

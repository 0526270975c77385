package optest

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// Check runs op on the GPU and on the CPU reference with the same inputs
// and compares every output within tol, and for an op that updates inputs
// in place (graph.InPlace) every updated input too; it returns the GPU's
// outputs. It is what CheckOp and the support table (Suite) both run. The
// error says which side failed: "<op> reference: …" (the inputs break the
// op's rules), "<op> gpu: …" (the adapter refused or failed: errors.Is(err,
// gpu.ErrUnsupported) when a limit or missing feature rules the op out)
// or a comparison naming the worst element.
func Check(dev *gpu.Device, op graph.Op, tol Tol, in ...*graph.Host) ([]*graph.Host, error) {
	if ip, ok := op.(graph.InPlace); ok && len(ip.Updates()) > 0 {
		return checkInPlace(dev, op, ip.Updates(), tol, in)
	}
	want, err := graph.RunReference(op, in...)
	if err != nil {
		return nil, fmt.Errorf("%s reference: %w", op.Name(), err)
	}
	got, err := graph.RunOp(dev, op, in...)
	if err != nil {
		return nil, fmt.Errorf("%s gpu: %w", op.Name(), err)
	}
	if len(got) != len(want) {
		return nil, fmt.Errorf("%s: gpu gave %d outputs, reference %d", op.Name(), len(got), len(want))
	}
	for i := range got {
		if err := Compare(fmt.Sprintf("%s output %d %v", op.Name(), i, want[i].Shape), got[i].Data, want[i].Data, tol); err != nil {
			return nil, err
		}
	}
	return got, nil
}

// checkInPlace runs an op that updates some inputs in one-node graphs on
// the GPU and reference executors (its inputs persistent State tensors, as
// the planner requires) and compares the outputs and the updated inputs.
func checkInPlace(dev *gpu.Device, op graph.Op, updates []int, tol Tol, in []*graph.Host) ([]*graph.Host, error) {
	g := graph.New()
	ts := make([]*graph.Tensor, len(in))
	for i, h := range in {
		ts[i] = g.State(fmt.Sprintf("in%d", i), h.Spec)
	}
	outs := g.Apply(op, ts...)
	if err := g.Err(); err != nil {
		return nil, fmt.Errorf("%s reference: %w", op.Name(), err)
	}
	plan, err := g.Plan(outs, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
	if err != nil {
		return nil, fmt.Errorf("%s reference: %w", op.Name(), err)
	}
	read := append(append([]*graph.Tensor{}, outs...), pick(ts, updates)...)
	run := func(ex graph.Executor) ([][]float64, error) {
		for i, h := range in {
			if err := ex.Set(ts[i], append([]float64(nil), h.Data...)); err != nil {
				return nil, err
			}
		}
		if err := ex.Run(); err != nil {
			return nil, err
		}
		return ex.Get(read...)
	}
	want, err := run(graph.NewReference(plan))
	if err != nil {
		return nil, fmt.Errorf("%s reference: %w", op.Name(), err)
	}
	gex, err := graph.NewGPU(dev, plan, nil)
	if err != nil {
		return nil, fmt.Errorf("%s gpu: %w", op.Name(), err)
	}
	defer gex.Close()
	got, err := run(gex)
	if err != nil {
		return nil, fmt.Errorf("%s gpu: %w", op.Name(), err)
	}
	var res []*graph.Host
	for i, t := range read {
		what := fmt.Sprintf("%s output %d %v", op.Name(), i, t.Shape)
		if i >= len(outs) {
			what = fmt.Sprintf("%s updated input %d %v", op.Name(), updates[i-len(outs)], t.Shape)
		}
		if err := Compare(what, got[i], want[i], tol); err != nil {
			return nil, err
		}
		if i < len(outs) {
			res = append(res, &graph.Host{Spec: t.Spec, Data: got[i]})
		}
	}
	return res, nil
}

func pick(ts []*graph.Tensor, idx []int) []*graph.Tensor {
	out := make([]*graph.Tensor, len(idx))
	for i, j := range idx {
		out[i] = ts[j]
	}
	return out
}

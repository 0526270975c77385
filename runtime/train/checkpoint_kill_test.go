package train_test

import (
	"bufio"
	"fmt"
	"github.com/moegpu/moegpu/internal/procenv"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/train"
)

// Environment of the save-loop helper process (see TestMain).
const (
	saveLoopDir   = "MOEGPU_TEST_SAVE_LOOP_DIR"
	saveLoopStart = "MOEGPU_TEST_SAVE_LOOP_START"
)

// TestMain turns the test binary into the save-loop helper when saveLoopDir is set: it builds a
// tiny trainer on the reference executor, says "ready", then saves a checkpoint into the
// directory over and over, one step further each time, until it is killed.
func TestMain(m *testing.M) {
	procenv.Restart()
	if dir := os.Getenv(saveLoopDir); dir != "" {
		os.Exit(saveLoop(dir))
	}
	os.Exit(m.Run())
}

func saveLoop(dir string) int {
	start, err := strconv.Atoi(os.Getenv(saveLoopStart))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tr, err := referenceTrainer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("ready")
	for step := start; ; step++ {
		tr.Step = step
		if err := tr.Save(dir, train.Reference); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
}

func referenceTrainer() (*train.Trainer, error) {
	c, err := config.Load("../../assets/configs/tiny-dense.json")
	if err != nil {
		return nil, err
	}
	c.Training.BatchSize = 1
	task, err := tasks.ByName("reverse")
	if err != nil {
		return nil, err
	}
	tr, err := train.New(c, task, train.Reference, nil, 100)
	if err != nil {
		return nil, err
	}
	return tr, tr.Init()
}

// A process killed with SIGKILL at random moments while it saves checkpoints in a loop (most of
// its time is spent inside Save) never leaves the directory without a complete checkpoint: after
// every kill the directory loads and restores, at a step no earlier than the last one seen.
func TestAKillDuringSaveNeverLosesTheCheckpoint(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "ckpt")
	tr, err := referenceTrainer()
	require.NoError(t, err)
	defer tr.Close()
	require.NoError(t, tr.Save(dir, train.Reference))

	rng := rand.New(rand.NewPCG(13, 6))
	last, leftovers := 0, 0
	// Each kill lands 0–window after the helper says it is ready. On a loaded machine the helper
	// may not run at all within the window: a kill that finds neither a new step nor a leftover
	// doubles the window (up to 2 s), and the loop goes on past 40 kills (up to 200) until one
	// kill has landed inside a save.
	const kills, mostKills = 40, 200
	window := 40 * time.Millisecond
	i := 0
	for ; i < kills || (leftovers == 0 && i < mostKills); i++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), saveLoopDir+"="+dir, saveLoopStart+"="+strconv.Itoa(last+1))
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "ready\n", line)
		time.Sleep(time.Duration(rng.Int64N(int64(window))))
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		err = cmd.Wait()
		require.Error(t, err, "the helper stopped by itself")
		inside := false
		if m, _ := filepath.Glob(filepath.Join(dir, ".checkpoint.*")); len(m) > 0 {
			leftovers++
			inside = true
		}

		state, _, err := train.LoadState(dir)
		require.NoError(t, err, "kill %d left no loadable checkpoint", i)
		require.GreaterOrEqual(t, state.Step, last, "kill %d went back in time", i)
		require.NoError(t, tr.Restore(dir), "kill %d", i)
		require.Equal(t, state.Step, tr.Step)
		if !inside && state.Step == last {
			window = min(2*window, 2*time.Second)
		}
		last = state.Step
	}
	t.Logf("%d kills, %d of them inside a save (leftover temporary or commit directory); last step %d; window %v", i, leftovers, last, window)
	require.Greater(t, leftovers, 0, "no kill landed inside a save; the test proved nothing")
}

// A leftover commit directory (a save killed after it committed, part-way through moving files)
// is finished by LoadState; a leftover temporary directory (killed before it committed) is
// ignored by readers and removed by the next Save.
func TestLoadStateFinishesASaveInterruptedAfterItsCommit(t *testing.T) {
	tr, err := referenceTrainer()
	require.NoError(t, err)
	defer tr.Close()
	dir := t.TempDir()
	tr.Step = 1
	require.NoError(t, tr.Save(dir, train.Reference))
	// Fake a save of step 2 that committed and moved only config.json.
	commit := filepath.Join(dir, ".checkpoint.commit")
	other := t.TempDir()
	tr.Step = 2
	require.NoError(t, tr.Save(other, train.Reference))
	require.NoError(t, os.Mkdir(commit, 0o755))
	for _, f := range []string{train.WeightsFile, train.OptimizerFile, train.StateFile} {
		require.NoError(t, os.Rename(filepath.Join(other, f), filepath.Join(commit, f)))
	}
	stale := filepath.Join(dir, ".checkpoint.tmp-123")
	require.NoError(t, os.Mkdir(stale, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(stale, train.WeightsFile), []byte("half"), 0o644))

	s, _, err := train.LoadState(dir)
	require.NoError(t, err)
	require.Equal(t, 2, s.Step)
	require.NoDirExists(t, commit)
	require.NoError(t, tr.Restore(dir))
	require.Equal(t, 2, tr.Step)

	tr.Step = 3
	require.NoError(t, tr.Save(dir, train.Reference))
	require.NoDirExists(t, stale)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{train.ConfigFile, train.WeightsFile, train.OptimizerFile, train.StateFile}, names)
}

// The trainer refuses a batch with an id outside the vocabulary (the loss kernel would silently
// ignore such a target) without taking a step, and a NaN weight shows up as an error naming the
// step and the loss, not as a message about the learning rate alone.
func TestTrainerRefusesBadIdsAndReportsNonFiniteLoss(t *testing.T) {
	tr, err := referenceTrainer()
	require.NoError(t, err)
	defer tr.Close()
	tokens, targets, weights, err := tr.Task.Batch(tasks.TrainRNG(1), tr.Train.BatchSize, tr.Train.SeqLen)
	require.NoError(t, err)
	for i, tg := range targets {
		if tg != tasks.IgnoreIndex {
			targets[i] = uint32(tr.Config.VocabSize)
			_, err = tr.StepBatch(tokens, targets, weights)
			require.ErrorContains(t, err, fmt.Sprintf("step 1: cross entropy: target %d at position %d is out of range", tr.Config.VocabSize, i))
			break
		}
	}
	require.Equal(t, 0, tr.Step, "a refused batch took a step")

	emb := tr.Model.Params()[0]
	vals, err := tr.Exec.Get(emb)
	require.NoError(t, err)
	v := vals[0]
	for i := range v {
		v[i] = math.NaN()
	}
	require.NoError(t, tr.Exec.Set(emb, v))
	_, err = tr.StepOnce()
	require.ErrorContains(t, err, "step 1: the loss is NaN")
}

package procenv

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEnvironAddsEachSettingToItsList(t *testing.T) {
	user := []string{"HOME=/root", "GODEBUG=madvdontneed=1", "GLIBC_TUNABLES=glibc.malloc.arena_max=2"}
	env, changed := Environ(user)
	assert.True(t, changed)
	assert.Equal(t, []string{"HOME=/root", "GODEBUG=madvdontneed=1,asyncpreemptoff=1",
		"GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", AddedEnv + "=GODEBUG,GLIBC_TUNABLES"}, env)
	assert.Equal(t, user, Undo(env))

	user = []string{"PATH=/bin"}
	env, changed = Environ(user)
	assert.True(t, changed)
	assert.Equal(t, []string{"PATH=/bin", "GODEBUG=asyncpreemptoff=1", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1", AddedEnv + "=GODEBUG,GLIBC_TUNABLES"}, env)
	assert.Equal(t, user, Undo(env))
}

func TestEnvironLeavesASetOrOptedOutEnvironmentAlone(t *testing.T) {
	set := []string{"GODEBUG=asyncpreemptoff=1", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"}
	env, changed := Environ(set)
	assert.False(t, changed, "a restarted process must not restart again")
	assert.Equal(t, set, env)
	assert.Equal(t, set, Undo(env), "settings the user made are not undone")

	optOut := []string{KeepPreemptionEnv + "=1", HugePagesEnv + "=0"}
	env, changed = Environ(optOut)
	assert.False(t, changed)
	assert.Equal(t, optOut, env)

	// One opted out, the other still added.
	user := []string{HugePagesEnv + "=0", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"}
	env, changed = Environ(user)
	assert.True(t, changed)
	assert.Equal(t, append(user, "GODEBUG=asyncpreemptoff=1", AddedEnv+"=GODEBUG"), env)
	assert.Equal(t, user, Undo(env))

	// A value the user chose stands; a setting that only starts like ours is not ours.
	user = []string{"GODEBUG=asyncpreemptoff=0", "GLIBC_TUNABLES=glibc.malloc.hugetlb=0"}
	env, changed = Environ(user)
	assert.False(t, changed)
	assert.Equal(t, user, env)
	env, changed = Environ([]string{"GODEBUG=asyncpreemptoff=1", "GLIBC_TUNABLES=glibc.malloc.hugetlbx=1"})
	assert.True(t, changed)
	assert.Equal(t, "GLIBC_TUNABLES=glibc.malloc.hugetlbx=1:glibc.malloc.hugetlb=1", env[1])
}

// Package shell runs one command for a shell job safely: argv executed
// directly, a command allowlist and an environment allowlist from the
// worker's own config, a clean environment, a working directory checked
// path-wise, resource limits in place before the command's first
// instruction, a process group that is terminated then killed on timeout,
// and output captured up to a cap with head and tail kept.
//
// A binary that uses Executor must call MaybeRunHelper first thing in main
// (and in TestMain): the executor re-executes the current binary as a small
// helper that sets the resource limits and then execs the command.
package shell

import "time"

// Config is the operator's policy for one worker, read from the worker's own
// config file. A job can narrow nothing here and widen nothing: it names a
// command, a directory, variables and a timeout, and each is checked against
// this policy before anything starts.
type Config struct {
	// Commands allowed, as absolute paths. The last element may be a glob
	// (path.Match syntax), as in "/usr/local/bin/backup-*"; the directory part
	// is literal. Entries and requested commands are compared after resolving
	// symlinks and "..", so "/usr/bin/../../tmp/x" or a link placed in an
	// allowed directory that points outside it is refused.
	Commands []string `toml:"commands"`
	// AllowShell lets a command run whose name is a shell's (sh, bash, ...),
	// even when Commands allows it. Off by default, so a glob such as
	// "/usr/bin/*" does not hand out a shell by accident.
	AllowShell bool `toml:"allow_shell"`
	// DirRoots are the directories a command may run in, or below. An empty
	// request runs in the first root. With no roots, every command is refused.
	DirRoots []string `toml:"dir_roots"`
	// EnvAllow are the names (or path.Match globs such as "BACKUP_*") of the
	// variables a job may set. Names starting with "LD_" are refused whatever
	// this says: they change which code the dynamic loader runs.
	EnvAllow []string `toml:"env_allow"`
	// Env holds variables every command gets, set by the operator. A job's
	// variable of the same name (if EnvAllow allows it) overrides it.
	Env map[string]string `toml:"env"`
	// Path and Home are the command's PATH and HOME; nothing else of the
	// worker's own environment reaches a command.
	Path string `toml:"path"`
	Home string `toml:"home"`

	TimeoutMsDefault int64 `toml:"timeout_ms_default"` // a request without a timeout gets this
	TimeoutMsMax     int64 `toml:"timeout_ms_max"`     // a longer request is refused
	// GraceMs is how long the process group has between SIGTERM and SIGKILL.
	GraceMs int64 `toml:"grace_ms"`
	// WaitDelayMs bounds the wait for output after the command ended: a
	// grandchild outside the group that holds the pipe is cut off after it.
	WaitDelayMs int64 `toml:"wait_delay_ms"`
	// OutputBytesMax caps what is kept of stdout and of stderr, each.
	OutputBytesMax int `toml:"output_bytes_max"`

	Limits Limits `toml:"limits"`
}

// Limits are resource limits (setrlimit) in force from the command's first
// instruction. Zero leaves a limit as the worker has it.
type Limits struct {
	CPUSeconds        uint64 `toml:"cpu_seconds"`         // RLIMIT_CPU: SIGXCPU at this, SIGKILL a second later
	AddressSpaceBytes uint64 `toml:"address_space_bytes"` // RLIMIT_AS
	OpenFiles         uint64 `toml:"open_files"`          // RLIMIT_NOFILE
	// Processes is RLIMIT_NPROC: counted per user, not per job, and not
	// enforced at all for root (the kernel exempts CAP_SYS_RESOURCE).
	Processes uint64 `toml:"processes"`
}

// Defaults, each with its reason.
const (
	// defaultPath holds only the system's directories: a job cannot put its
	// own directory first and shadow a tool the command calls.
	defaultPath = "/usr/local/bin:/usr/bin:/bin"
	// defaultHome does not exist, so nothing reads or writes a real home
	// directory unless the operator names one.
	defaultHome            = "/nonexistent"
	defaultTimeoutMs       = 60_000
	defaultTimeoutMsMax    = 3_600_000
	defaultGraceMs         = 5_000
	defaultWaitDelayMs     = 1_000
	defaultOutputBytesMax  = 64 << 10 // fits a job result in the replicated log
	outputBytesMaxCeiling  = 16 << 20 // a cap above this is a config mistake
	envVarsPerRequestMax   = 256
	argvBytesPerRequestMax = 128 << 10 // below Linux's ARG_MAX with room for the environment
)

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.Path == "" {
		c.Path = defaultPath
	}
	if c.Home == "" {
		c.Home = defaultHome
	}
	if c.TimeoutMsDefault <= 0 {
		c.TimeoutMsDefault = defaultTimeoutMs
	}
	if c.TimeoutMsMax <= 0 {
		c.TimeoutMsMax = defaultTimeoutMsMax
	}
	if c.GraceMs <= 0 {
		c.GraceMs = defaultGraceMs
	}
	if c.WaitDelayMs <= 0 {
		c.WaitDelayMs = defaultWaitDelayMs
	}
	if c.OutputBytesMax <= 0 {
		c.OutputBytesMax = defaultOutputBytesMax
	}
	return c
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

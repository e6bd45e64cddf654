package shell

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ErrRefused is matched (errors.Is) by every refusal: the command was never
// started. errors.As with *RefusedError gives the reason.
var ErrRefused = errors.New("command refused")

// Reason says why a request was refused.
type Reason int

// Reasons for a refusal.
const (
	ReasonBadRequest        Reason = iota + 1 // empty argv, oversized argv, NUL bytes, timeout above the max
	ReasonCommandNotAllowed                   // not in the command allowlist, not absolute, missing, not executable
	ReasonShellNotAllowed                     // a shell, and the config does not allow shells
	ReasonDirNotAllowed                       // the working directory is outside every root, or missing
	ReasonEnvNotAllowed                       // a variable outside the environment allowlist
)

var reasonNames = map[Reason]string{
	ReasonBadRequest:        "bad request",
	ReasonCommandNotAllowed: "command not allowed",
	ReasonShellNotAllowed:   "shell not allowed",
	ReasonDirNotAllowed:     "directory not allowed",
	ReasonEnvNotAllowed:     "variable not allowed",
}

func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// RefusedError is a refusal by the policy, with its reason and what was
// refused.
type RefusedError struct {
	Reason Reason
	Detail string
}

func (e *RefusedError) Error() string { return "refused: " + e.Reason.String() + ": " + e.Detail }

// Is makes errors.Is(err, ErrRefused) true for every refusal.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func refuse(r Reason, format string, args ...any) error {
	return &RefusedError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// shellNames are refused unless the config allows shells. Programs that run
// their arguments as a command (env, xargs, nice, timeout, find) are not on
// this list: allowing one allows everything, which DESIGN.md warns about.
var shellNames = map[string]bool{
	"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true,
	"csh": true, "tcsh": true, "fish": true, "ash": true, "busybox": true,
}

// commandRule is one allowlist entry. A literal entry is resolved whole (so
// "/bin/sh" allows what it points to); a glob entry has its directory
// resolved and matches files that resolve to inside that directory.
type commandRule struct {
	exact string // a literal entry, symlinks resolved; empty for a glob
	dir   string // a glob's directory, symlinks resolved
	glob  string // a glob's last element
}

// policy is a Config whose paths are resolved once, when the executor is made.
type policy struct {
	cfg      Config
	commands []commandRule
	roots    []string // symlinks resolved
}

// newPolicy resolves the config's paths. A path that does not resolve is a
// config mistake the operator should hear about at start, not at a job.
func newPolicy(cfg Config) (*policy, error) {
	p := &policy{cfg: cfg.withDefaults()}
	if p.cfg.OutputBytesMax > outputBytesMaxCeiling {
		return nil, fmt.Errorf("shell config: output_bytes_max %d above %d", p.cfg.OutputBytesMax, outputBytesMaxCeiling)
	}
	for _, c := range cfg.Commands {
		if !filepath.IsAbs(c) {
			return nil, fmt.Errorf("shell config: command %q is not an absolute path", c)
		}
		rule, err := newCommandRule(c)
		if err != nil {
			return nil, fmt.Errorf("shell config: command %q: %w", c, err)
		}
		p.commands = append(p.commands, rule)
	}
	for _, r := range cfg.DirRoots {
		if !filepath.IsAbs(r) {
			return nil, fmt.Errorf("shell config: dir root %q is not an absolute path", r)
		}
		rr, err := filepath.EvalSymlinks(r)
		if err != nil {
			return nil, fmt.Errorf("shell config: dir root %q: %w", r, err)
		}
		p.roots = append(p.roots, rr)
	}
	for _, e := range cfg.EnvAllow {
		if _, err := path.Match(e, ""); err != nil {
			return nil, fmt.Errorf("shell config: env pattern %q: %w", e, err)
		}
	}
	return p, nil
}

func newCommandRule(entry string) (commandRule, error) {
	dir, base := filepath.Split(filepath.Clean(entry))
	if _, err := path.Match(base, ""); err != nil {
		return commandRule{}, err
	}
	if strings.ContainsAny(dir, "*?[\\") {
		return commandRule{}, errors.New("a glob is allowed in the last element only")
	}
	if !strings.ContainsAny(base, "*?[\\") {
		exact, err := filepath.EvalSymlinks(entry)
		return commandRule{exact: exact}, err
	}
	rdir, err := filepath.EvalSymlinks(dir)
	return commandRule{dir: rdir, glob: base}, err
}

// matches reports whether a command path, fully resolved, is allowed.
func (r commandRule) matches(resolved string) bool {
	if r.exact != "" {
		return resolved == r.exact
	}
	dir, base := filepath.Split(resolved)
	ok, _ := path.Match(r.glob, base)
	return ok && filepath.Clean(dir) == r.dir
}

// checkCommand resolves argv[0] and checks it against the allowlist. The
// resolved path is what runs, so a link swapped after the check does not
// change the program (a directory swapped on the way still could: allowed
// directories must not be writable by whoever submits jobs).
func (p *policy) checkCommand(name string) (string, error) {
	if !filepath.IsAbs(name) {
		return "", refuse(ReasonCommandNotAllowed, "%q is not an absolute path", name)
	}
	resolved, err := filepath.EvalSymlinks(name)
	if err != nil {
		return "", refuse(ReasonCommandNotAllowed, "%q: %v", name, err)
	}
	allowed := false
	for _, r := range p.commands {
		allowed = allowed || r.matches(resolved)
	}
	if !allowed {
		return "", refuse(ReasonCommandNotAllowed, "%q (resolved %q) is not in the allowlist", name, resolved)
	}
	if !p.cfg.AllowShell && (shellNames[filepath.Base(name)] || shellNames[filepath.Base(resolved)]) {
		return "", refuse(ReasonShellNotAllowed, "%q is a shell and allow_shell is off", name)
	}
	fi, err := os.Stat(resolved)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", refuse(ReasonCommandNotAllowed, "%q is not an executable file", resolved)
	}
	return resolved, nil
}

// checkDir resolves the working directory and checks that it is one of the
// roots or below one, comparing whole path elements: "/srv/jobs-evil" is not
// below "/srv/jobs".
func (p *policy) checkDir(dir string) (string, error) {
	if len(p.roots) == 0 {
		return "", refuse(ReasonDirNotAllowed, "no dir_roots configured")
	}
	if dir == "" {
		return p.roots[0], nil
	}
	if !filepath.IsAbs(dir) {
		return "", refuse(ReasonDirNotAllowed, "%q is not an absolute path", dir)
	}
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", refuse(ReasonDirNotAllowed, "%q: %v", dir, err)
	}
	for _, root := range p.roots {
		if within(resolved, root) {
			return resolved, nil
		}
	}
	return "", refuse(ReasonDirNotAllowed, "%q (resolved %q) is outside the allowed roots", dir, resolved)
}

// within reports whether the clean path p is root or below it.
func within(p, root string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// environ builds the command's whole environment: PATH and HOME, the
// operator's fixed variables, then the job's, each of which must be allowed,
// then the worker's own (Request.WorkerEnv), which win.
func (p *policy) environ(requested, worker map[string]string) ([]string, error) {
	if len(requested)+len(worker) > envVarsPerRequestMax {
		return nil, refuse(ReasonBadRequest, "%d variables, at most %d", len(requested)+len(worker), envVarsPerRequestMax)
	}
	env := map[string]string{"PATH": p.cfg.Path, "HOME": p.cfg.Home}
	for k, v := range p.cfg.Env {
		env[k] = v
	}
	for k, v := range requested {
		if err := p.checkEnvVar(k, v); err != nil {
			return nil, err
		}
		env[k] = v
	}
	for k, v := range worker { // the worker's own: fixed names, checked only for form
		if !strings.HasPrefix(k, WorkerEnvPrefix) || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, refuse(ReasonBadRequest, "worker variable %q: want a name starting %s, no NUL", k, WorkerEnvPrefix)
		}
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}

func (p *policy) checkEnvVar(name, value string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") || strings.ContainsRune(value, 0) {
		return refuse(ReasonBadRequest, "malformed variable %q", name)
	}
	if strings.HasPrefix(name, "LD_") {
		return refuse(ReasonEnvNotAllowed, "%q: loader variables are never allowed", name)
	}
	for _, pat := range p.cfg.EnvAllow {
		if ok, _ := path.Match(pat, name); ok {
			return nil
		}
	}
	return refuse(ReasonEnvNotAllowed, "%q is not in the environment allowlist", name)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

const (
	// backupBytesMax bounds a backup read from a node or a file. The server
	// holds a backup in memory to send it, so a real one is far smaller; this
	// only keeps a wrong address or file from filling the disk or memory.
	backupBytesMax = 16 << 30

	// saveTimeout bounds a whole save: the server's barrier takes at most its
	// call deadline (10 s), the rest is the transfer of a possibly large file.
	saveTimeout = 10 * time.Minute
)

func snapshotCommand() *cli.Command {
	save := &cli.Command{
		Name:      "save",
		Usage:     "save a consistent backup of a running cluster to FILE",
		ArgsUsage: "FILE",
		Description: "The backup holds every write acknowledged before the command started. It is written to a\n" +
			"temporary file next to FILE, synced, read back and checked, then renamed over FILE, so FILE\n" +
			"is either the old file or the whole new backup.",
		Flags:        []cli.Flag{addrFlag()},
		OnUsageError: onUsageError,
		Action:       runSnapshotSave,
	}
	restore := &cli.Command{
		Name:      "restore",
		Usage:     "run one member of a NEW cluster that starts from the backup in FILE",
		ArgsUsage: "FILE",
		Description: "Verifies FILE (a damaged file is refused with exit status 1) and runs this node as a member\n" +
			"of a new cluster whose data starts as the backup's, exactly like\n" +
			"aspen node start --restore FILE. Every member of the new cluster runs it with the same FILE,\n" +
			"the same --initial-cluster, its own --id and an EMPTY --data-dir. Keys keep their revisions;\n" +
			"the membership is --initial-cluster, not the backed-up cluster's. To restart a member later,\n" +
			"use aspen node start with the same flags (this command prints it), without FILE.\n\n" +
			"With --dry-run it only checks FILE and the data dir, and prints the command each member runs.",
		Flags: append(nodeFlags(),
			&cli.BoolFlag{Name: "dry-run", Usage: "check FILE and the data dir, print each member's command, and exit"}),
		OnUsageError: onUsageError,
		Action:       runSnapshotRestore,
	}
	return &cli.Command{
		Name:            "snapshot",
		Usage:           "back up a running cluster, and start a new cluster from a backup",
		Subcommands:     []*cli.Command{save, restore},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

func runSnapshotSave(c *cli.Context) error {
	args, err := exactArgs(c, "FILE")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, saveTimeout)
	defer cancel()
	b, size, err := saveBackup(ctx, kvClient(c), args[0])
	if err != nil {
		return failure("snapshot save: %v", err)
	}
	_, err = fmt.Fprintf(c.App.Writer, "saved %s: revision %d, index %d, %d bytes\n", args[0], b.Revision, b.Index, size)
	return err
}

// saveBackup downloads a backup into a temporary file next to path, and
// renames it over path only once it is on disk and reads back valid.
func saveBackup(ctx context.Context, cl *client, path string) (node.Backup, int64, error) {
	resp, err := cl.do(ctx, http.MethodGet, "/v1/aspen/snapshot", nil, nil)
	if err != nil {
		return node.Backup{}, 0, err
	}
	defer resp.Body.Close()
	// CreateTemp makes the file readable by its owner only, as a backup of
	// the whole store should be.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return node.Backup{}, 0, fmt.Errorf("create temporary file: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(tmp.Name())
		}
	}()
	size, err := writeSynced(tmp, resp.Body)
	if err != nil {
		return node.Backup{}, 0, fmt.Errorf("download from %s into %s: %w", cl.addr, tmp.Name(), err)
	}
	b, err := verifySaved(tmp.Name(), resp.Header)
	if err != nil {
		return node.Backup{}, 0, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return node.Backup{}, 0, fmt.Errorf("rename into place: %w", err)
	}
	renamed = true
	return b, size, syncDir(filepath.Dir(path))
}

// writeSynced copies r into f, up to backupBytesMax, and syncs and closes f.
func writeSynced(f *os.File, r io.Reader) (int64, error) {
	n, err := io.Copy(f, io.LimitReader(r, backupBytesMax+1))
	switch {
	case err != nil:
		f.Close()
		return n, err
	case n > backupBytesMax:
		f.Close()
		return n, fmt.Errorf("backup exceeds %d bytes", int64(backupBytesMax))
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return n, fmt.Errorf("sync: %w", err)
	}
	return n, f.Close()
}

// verifySaved reads the file back, so that what is renamed into place is
// what the disk holds, not what was meant to be written; and it must be the
// backup the server described in its headers.
func verifySaved(path string, hdr http.Header) (node.Backup, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return node.Backup{}, fmt.Errorf("read back %s: %w", path, err)
	}
	b, err := node.DecodeBackup(data)
	if err != nil {
		return node.Backup{}, fmt.Errorf("the saved copy does not verify: %w", err)
	}
	if rev := hdr.Get("X-Aspen-Revision"); rev != "" && rev != strconv.FormatInt(b.Revision, 10) {
		return node.Backup{}, fmt.Errorf("the server announced revision %s, but the backup holds revision %d", rev, b.Revision)
	}
	return b, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func runSnapshotRestore(c *cli.Context) error {
	args, err := exactArgs(c, "FILE")
	if err != nil {
		return err
	}
	cfg, wcfg, err := nodeConfig(c)
	if err != nil {
		return usageError("%v", err)
	}
	b, err := loadRestore(args[0], cfg)
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("dry-run") {
		fmt.Fprintf(w, "%s: a valid backup at revision %d, index %d, %d bytes\n", args[0], b.Revision, b.Index, len(b.data))
		return printRestorePlan(w, args[0], cfg)
	}
	fmt.Fprintf(w, "restoring revision %d (index %d) from %s into %s\nrestart this node later with:\n  %s\n",
		b.Revision, b.Index, args[0], cfg.DataDir, shellJoin(append([]string{"aspen", "node", "start"}, nodeArgs(cfg, cfg.DataDir, cfg.HTTPAddr)...)))
	cfg.Restore = b.data
	return runNode(cfg, wcfg)
}

// verifiedBackup is a backup file that decoded with a good checksum.
type verifiedBackup struct {
	node.Backup
	data []byte
}

// loadRestore reads and verifies the backup a node bootstraps from. A damaged
// file is a finding (exit 1); the rest is bad input.
func loadRestore(path string, cfg server.Config) (verifiedBackup, error) {
	if cfg.Join {
		return verifiedBackup{}, usageError("a restore bootstraps a new cluster and --join joins a running one: give one of them")
	}
	if err := checkEmptyDir(cfg.DataDir); err != nil {
		return verifiedBackup{}, usageError("%v", err)
	}
	data, err := readBounded(path)
	if err != nil {
		return verifiedBackup{}, usageError("backup %s: %v", path, err)
	}
	b, err := node.DecodeBackup(data)
	if err != nil {
		return verifiedBackup{}, failure("backup %s cannot be restored: %v", path, err)
	}
	return verifiedBackup{Backup: b, data: data}, nil
}

func readBounded(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > backupBytesMax {
		return nil, fmt.Errorf("%d bytes exceeds the %d-byte limit", st.Size(), int64(backupBytesMax))
	}
	return os.ReadFile(path)
}

// checkEmptyDir refuses a data dir that holds anything: a node with state
// resumes it and ignores the backup, which would silently not restore.
func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("data dir %s: %w", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("a restore needs an empty data dir, but %s holds %d entries (such as %q): a node with data resumes it instead of restoring; choose another --data-dir",
			dir, len(entries), entries[0].Name())
	}
	return nil
}

// printRestorePlan prints the command each member of the new cluster runs;
// what only the operator knows (other members' dirs and client addresses)
// is left as <placeholders>.
func printRestorePlan(w io.Writer, file string, cfg server.Config) error {
	ids := make([]uint64, 0, len(cfg.Cluster))
	for id := range cfg.Cluster {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	fmt.Fprintln(w, "start every member, each with an empty data dir:")
	for _, id := range ids {
		member := cfg
		member.ID, member.PeerAddr = id, cfg.Cluster[id]
		dir, httpAddr := "<empty data dir>", "<host:port>"
		if id == cfg.ID {
			dir, httpAddr, member.PeerAddr = cfg.DataDir, cfg.HTTPAddr, cfg.PeerAddr
		}
		args := append([]string{"aspen", "snapshot", "restore"}, nodeArgs(member, dir, httpAddr)...)
		if _, err := fmt.Fprintf(w, "  %s\n", shellJoin(append(args, file))); err != nil {
			return err
		}
	}
	return nil
}

// nodeArgs are the flags that give a node cfg's settings.
func nodeArgs(cfg server.Config, dir, httpAddr string) []string {
	args := []string{"--id", strconv.FormatUint(cfg.ID, 10), "--data-dir", dir,
		"--initial-cluster", formatCluster(cfg.Cluster), "--http-addr", httpAddr}
	if cfg.PeerAddr != cfg.Cluster[cfg.ID] {
		args = append(args, "--peer-addr", cfg.PeerAddr)
	}
	if cfg.Tick != 100*time.Millisecond {
		args = append(args, "--tick-ms", strconv.FormatInt(cfg.Tick.Milliseconds(), 10))
	}
	return args
}

// shellJoin quotes the arguments that a POSIX shell would split or expand.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "" || strings.ContainsFunc(a, func(r rune) bool { return !isShellSafe(r) }) {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

func isShellSafe(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r)
}

package server

// Every default and bound of the server, each with the reason for its value.
// Durations are plain numbers with their unit in the name, converted where
// used (tickMsDefault * time.Millisecond), as core/node's …Ns fields are.
const (
	// tickMsDefault is raft's tick when Config.Tick is zero: with the
	// node's default election of ten ticks, a dead leader is replaced in one
	// to two seconds, while a heartbeat per tick stays cheap.
	tickMsDefault = 100

	// inboxMax bounds queued inputs to the loop; a full inbox drops raft
	// messages (raft retransmits) and makes client calls wait. Twice a
	// round, so one round's worth can queue while the loop writes the last.
	inboxMax = 8192
	// inputsPerRoundMax bounds how many queued inputs one loop round takes
	// before it writes: everything taken in one round is written and synced
	// together (group commit), yet one round's latency stays bounded.
	inputsPerRoundMax = 4096

	// requestTimeoutMs is how long the replica keeps a submitted request
	// before answering it as lost; callers retry it under the same session.
	// Half of callDeadlineMs, so a call gets at least one retry.
	requestTimeoutMs = 5_000
	// snapshotEntries and compactKeepEntries: a snapshot encodes the whole
	// state, so on a real store it is taken rarely; half is kept so that a
	// follower a little behind catches up from the log, not a snapshot.
	snapshotEntries    = 10_000
	compactKeepEntries = 5_000
	// snapshotBytes and compactKeepBytes bound the same by the entries'
	// bytes: raft's log stays in memory from the compaction point on, and
	// 15k entries of 64 puts each held 180 MB. Entries of a few hundred
	// bytes (single puts) reach the counts first.
	snapshotBytes    = 16 << 20
	compactKeepBytes = 8 << 20

	// sessionsPerServer bounds writes in flight from one server: each holds
	// one client session for its duration, so retries of it apply once.
	// Half the replicated session table (node's SessionsMax, evicting the
	// idlest); the stack keeps the sessions a server really uses far fewer.
	sessionsPerServer = 512
	// callDeadlineMs is how long a request is retried (no leader yet, a lost
	// proposal) before the client is told the outcome is unknown: longer
	// than an election or two, shorter than clients' own timeouts.
	callDeadlineMs = 10_000
	// retryBackoffMsMin and retryBackoffMsMax bound the doubling pause
	// between retries: the first retry comes quickly (a proposal lost to a
	// leader change), later ones no faster than a couple of ticks.
	retryBackoffMsMin = 5
	retryBackoffMsMax = 200

	// watchHistoryMax bounds the change events kept for watches that start
	// in the past: enough for a watcher that reconnects after a hiccup under
	// heavy writes; each event holds its value, so memory bounds it.
	watchHistoryMax = 16384
	// blockingWaitSecondsDefault and blockingWaitSecondsMax are Consul's
	// own defaults for a blocking query's ?wait.
	blockingWaitSecondsDefault = 5 * 60
	blockingWaitSecondsMax     = 10 * 60
	// listCopyKeysMax is the longest KV listing (?recurse, ?keys) the read
	// copies out in the loop, as any read; a longer one is streamed from a
	// clone of the state. A clone is O(1) for the loop, but the writes after
	// it copy the tree nodes they touch (core/kv's BenchmarkApplyPutAfterClone:
	// at 100k keys a put right after a clone allocates 17 KB, not 240 B, and
	// takes 3-8 times as long), about what copying a thousand short records
	// costs the loop.
	listCopyKeysMax = 1000
	// listWriteBufferBytes batches a streamed listing's entries into writes
	// of a few dozen kilobytes: far fewer syscalls and chunks than one per
	// entry, and a small buffer however long the listing.
	listWriteBufferBytes = 32 << 10
	// sessionBodyBytesMax bounds a session create: a name, a node and a
	// few short fields.
	sessionBodyBytesMax = 64 << 10
	// lockDelaySecondsBelow is Consul's rule for a session's LockDelay: a
	// value below 1000 (nanoseconds) was meant as seconds.
	lockDelaySecondsBelow = 1000
	// txnOpsMax matches Consul's limit on operations per transaction.
	txnOpsMax = 64
	// txnBodyPerValueFactor scales txnOpsMax values of the largest size to a
	// body limit: base64 makes a value 4/3 as long, keys and JSON add the rest.
	txnBodyPerValueFactor = 2
	// memberBodyBytesMax bounds a membership request, a few short fields.
	memberBodyBytesMax = 64 << 10
	// leaseBodyBytesMax bounds a lease request: three short fields.
	leaseBodyBytesMax = 4 << 10
	// jobBodyBytesMax bounds a job request: a payload or an output at the
	// module's default cap (64 KiB) even if JSON escaped every byte (6x),
	// plus the short fields. A larger body is refused with 413, never cut.
	jobBodyBytesMax = 1 << 20
	// jobBatchBodyBytesMax bounds a batch complete: 16 items (the module's
	// default jobs per lease) each with an output at the default cap, even
	// if JSON escaped every byte (6 MiB), plus the short fields.
	jobBatchBodyBytesMax = 8 << 20
	// jobAttemptsDefault and jobTimeoutMsDefault stand in for MaxAttempts
	// and TimeoutMs left at 0 (absent) in a submit: 0 is never valid for
	// either, and a job without a retry or a minute to run is rarely meant.
	jobAttemptsDefault  = 3
	jobTimeoutMsDefault = 60_000

	// topicBodyBytesMax bounds a topic request other than a publish: a
	// name and a few short fields.
	topicBodyBytesMax = 64 << 10
	// topicPublishBodyBytesMax bounds a publish: a batch of 100 messages at
	// 64 KiB each even if JSON escaped every byte, or one message at the
	// module's cap (256 KiB) in base64 with room to spare. A larger body is
	// refused with 413, never cut; larger batches go in several publishes.
	topicPublishBodyBytesMax = 16 << 20
	// topicWaitMsMax bounds a read's long poll: a minute, so a client (or a
	// proxy in between) sees an answer well before its own timeouts.
	topicWaitMsMax = 60_000
	// topicReadersMax bounds the reads waiting at once on one node: each
	// holds a connection and a goroutine, and the loop checks each after a
	// round that applied entries.
	topicReadersMax = 4096

	// readHeaderTimeoutMs stops clients that open connections and never
	// finish a request from holding them (slowloris).
	readHeaderTimeoutMs = 10_000
	// shutdownGraceMs is how long a stopping node lets answers already
	// computed (such as the one to the request that removed it) reach their
	// clients before it cuts blocked queries and watches.
	shutdownGraceMs = 500

	// notifyRemovedTimeoutMs bounds each half of a removal notice: telling
	// the removed node, and that node checking back with the sender. A
	// member that takes longer on a loopback or LAN call is down or cut off.
	notifyRemovedTimeoutMs = 5_000
	// transferTimeoutMs is how long a leader transfer may take: a caught-up
	// target wins in one election; longer means it is lagging or unreachable.
	transferTimeoutMs = 10_000
	// transferPollMs is how often a transfer looks for the new leader: a
	// couple of ticks, the soonest an election can end.
	transferPollMs = 200
	// advertiseCheckMs is how often a node checks that the membership still
	// holds its addresses; drift is rare (a restart on new ports).
	advertiseCheckMs = 2_000
	// advertiseRetryMs is the pause while an advertisement has not shown up
	// yet, so clients can be pointed at a new node soon after it starts.
	advertiseRetryMs = 200
	// advertiseTimeoutMs bounds one attempt to write the advertisement.
	advertiseTimeoutMs = 5_000

	// latencyBucketSecondsMin is the smallest latency bucket: 100 µs, below
	// a local fsync or a loopback request.
	latencyBucketSecondsMin = 0.0001
	// fsyncBuckets doubling from the minimum reach about 3 s, a sick disk.
	fsyncBuckets = 16
	// requestBuckets reach about 13 s, past callDeadlineMs.
	requestBuckets = 18
	// stepBucketSecondsMin and stepBuckets time the loop's own steps (a
	// Ready, a batch write), which take tens of microseconds: from 10 µs
	// to about 0.3 s.
	stepBucketSecondsMin = 0.00001
	stepBuckets          = 16
)

// Consumer group defaults (groups.go) for fields a create leaves out (0).
const (
	// groupSessionMsDefault: a member heartbeating at a third of it rides
	// out two lost heartbeats, and a dead one's partitions move in seconds.
	groupSessionMsDefault = 10_000
	// groupAckWaitMsDefault is NATS JetStream's default ack wait.
	groupAckWaitMsDefault = 30_000
	// groupDeliveriesDefault: a poison message costs five attempts, not a
	// queue blocked behind it.
	groupDeliveriesDefault = 5
	// groupInFlightDefault bounds one member's leases: a fetch of a hundred
	// at a time and a second batch in hand.
	groupInFlightDefault = 200
	// groupBodyBytesMax bounds a group request: short fields, at most a
	// page of dead-letter seqs and a topic's partitions released.
	groupBodyBytesMax = 64 << 10
)

// Package config owns Kapkan's configuration file (kapkan.yaml): the YAML
// schema as Go structs, the defaults, and the validation that reports every
// problem at once with its file, line and column.
//
// Load and Parse apply Default, decode the file strictly (an unknown key is an
// error, never ignored) and validate the result. Dump renders the effective
// configuration back to YAML with every default filled in.
package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file.
type Config struct {
	// DryRun keeps every mitigation in dry-run: attacks are detected,
	// classified and reported, but nothing is announced over BGP. It is true
	// unless the file says dry_run: false.
	DryRun bool `yaml:"dry_run"`
	// Log configures the daemon's log output.
	Log Log `yaml:"log"`
	// Ingest configures the flow telemetry listeners and sampling rates.
	Ingest Ingest `yaml:"ingest"`
	// Detection configures how traffic rates are measured.
	Detection Detection `yaml:"detection"`
	// Hostgroups are the protected prefixes, grouped by the thresholds that
	// apply to them. Traffic outside every hostgroup is never counted.
	Hostgroups []Hostgroup `yaml:"hostgroups"`
	// Rules configures the operator's rule directories.
	Rules Rules `yaml:"rules"`
	// API configures the HTTP server of /metrics, /healthz, /readyz and
	// the REST API, and its tokens.
	API API `yaml:"api"`
	// Mitigation configures the safety limits of mitigation and the BGP
	// speaker that announces it.
	Mitigation Mitigation `yaml:"mitigation"`
	// Notify are the notification channels: who is told about attacks and
	// mitigations, and how.
	Notify []Notifier `yaml:"notify"`
	// Store configures the history: attacks, mitigations, reloads and
	// hostgroup traffic, kept for the API and the dashboard.
	Store Store `yaml:"store"`
	// Incidents configures the flight recorder: the telemetry kept of
	// every attack, for `kapkan incident export`.
	Incidents Incidents `yaml:"incidents"`

	// file is the name the configuration was parsed under, and pos the
	// position of every node that was decoded, keyed by its path
	// (hostgroups[0].prefixes[1]). Both are empty for a Config built in code.
	file string
	pos  map[string]position
}

// Log configures the daemon's log output.
type Log struct {
	// Level is the lowest level that is logged: debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text (logfmt-like key=value pairs) or json (one object per
	// line).
	Format string `yaml:"format"`
}

// Ingest configures the flow telemetry listeners and sampling rates.
type Ingest struct {
	// SFlow is the sFlow v5 listener.
	SFlow Listener `yaml:"sflow"`
	// NetFlow is the listener for NetFlow v5, NetFlow v9 and IPFIX, all on one
	// port.
	NetFlow Listener `yaml:"netflow"`
	// DefaultSamplingRate is the sampling rate assumed where the telemetry
	// carries none and no exporter override applies. 1 means unsampled.
	DefaultSamplingRate uint32 `yaml:"default_sampling_rate"`
	// Exporters are per-exporter overrides, matched on the source address of
	// the exporter's datagrams.
	Exporters []Exporter `yaml:"exporters"`
	// MaxExporters bounds the exporter addresses that get state; datagrams
	// from further addresses are dropped and counted. Exporters listed in
	// Exporters are always admitted.
	MaxExporters int `yaml:"max_exporters"`
	// MaxTemplates bounds the NetFlow v9 / IPFIX templates kept over every
	// exporter not listed in Exporters.
	MaxTemplates int `yaml:"max_templates"`
	// MaxPendingBytes bounds the data sets kept, over every exporter not
	// listed in Exporters, while their template is unknown.
	MaxPendingBytes int `yaml:"max_pending_bytes"`
}

// Listener is one UDP flow listener.
type Listener struct {
	// Listen is the UDP address to listen on, as host:port; an empty host
	// listens on every address. An empty string disables the listener.
	Listen string `yaml:"listen"`
	// Workers is the number of sockets (SO_REUSEPORT) and decoding goroutines;
	// 0 means one per CPU.
	Workers int `yaml:"workers"`
	// ReadBuffer is the socket receive buffer (SO_RCVBUF) in bytes; 0 keeps the
	// system default.
	ReadBuffer int `yaml:"read_buffer"`
}

// Exporter overrides what the telemetry of one exporter says.
type Exporter struct {
	// Address is the exporter's address, the source of its datagrams.
	Address netip.Addr `yaml:"address"`
	// SamplingRate, when set, is used for every record of this exporter,
	// whatever rate its telemetry announces. 0 or absent means no override.
	SamplingRate uint32 `yaml:"sampling_rate,omitempty"`
	// Name replaces the address in logs, metric labels and the API.
	Name string `yaml:"name,omitempty"`
}

// Detection configures how traffic rates are measured.
type Detection struct {
	// Window is the period rates are averaged over, a whole number of seconds
	// from 1s to 300s. Traffic is counted in one-second buckets.
	Window Duration `yaml:"window"`
	// Cooldown is how long every rate of an attack must stay below its
	// threshold before the attack ends; traffic that comes back within it
	// continues the same attack. From 1s to 24h.
	Cooldown Duration `yaml:"cooldown"`
	// HysteresisPercent is how far below a threshold, in percent of it, a
	// rate must fall to count as below (0 to 90).
	HysteresisPercent uint32 `yaml:"hysteresis_percent"`
	// Shards is the number of window shards, each owned by one goroutine; 0
	// means one per CPU.
	Shards int `yaml:"shards"`
	// QueueSize is the number of record sub-batches (128 records each) a
	// shard's queue holds before records are dropped (and counted).
	QueueSize int `yaml:"queue_size"`
	// SampleSize is the number of recent flow records kept per address near
	// a threshold or under attack, for classification.
	SampleSize int `yaml:"sample_size"`
	// MaxHot bounds how many addresses at once keep per-protocol counters and
	// a flow sample (about 0.3 MB each at the default sample size).
	MaxHot int `yaml:"max_hot"`
}

// Hostgroup is a named set of protected prefixes sharing one set of
// thresholds. An address belongs to the hostgroup of its most specific
// prefix.
type Hostgroup struct {
	// Name identifies the hostgroup in logs, metrics, rules and the API:
	// lower-case letters, digits, "_" and "-", starting with a letter or
	// digit.
	Name string `yaml:"name"`
	// Prefixes are the protected networks, in CIDR notation without host bits.
	// A prefix may appear in one hostgroup only.
	Prefixes []netip.Prefix `yaml:"prefixes"`
	// IgnoreSources are remote prefixes whose traffic does not count toward
	// this hostgroup's thresholds (speed-test servers, CDNs, backup peers):
	// the source of incoming traffic and the destination of outgoing traffic.
	IgnoreSources []netip.Prefix `yaml:"ignore_sources"`
	// Thresholds are the rates above which an address of this hostgroup is
	// under attack.
	Thresholds Thresholds `yaml:"thresholds"`
}

// Thresholds are the per-direction threshold sets of a hostgroup.
type Thresholds struct {
	// Incoming applies to traffic towards each protected address.
	Incoming ThresholdSet `yaml:"incoming"`
	// Outgoing applies to traffic from each protected address.
	Outgoing ThresholdSet `yaml:"outgoing"`
	// IncomingTotal applies to the sum of the traffic towards all addresses
	// of each protected prefix: an attack spread over many addresses (carpet
	// bombing) is detected as one attack on the prefix.
	IncomingTotal ThresholdSet `yaml:"incoming_total"`
	// OutgoingTotal applies to the sum of the traffic from all addresses of
	// each protected prefix.
	OutgoingTotal ThresholdSet `yaml:"outgoing_total"`
	// Disabled switches detection off for the hostgroup while keeping its
	// thresholds: its traffic is still counted, no attack is reported.
	Disabled bool `yaml:"disabled,omitempty"`
}

// ThresholdSet are the rates, per address and per direction, above which an
// attack is detected. Every threshold is optional: 0 or absent turns that
// check off.
type ThresholdSet struct {
	// PPS is the total packets per second.
	PPS uint64 `yaml:"pps,omitempty"`
	// Mbps is the total megabits per second.
	Mbps uint64 `yaml:"mbps,omitempty"`
	// FPS is the flows per second.
	FPS uint64 `yaml:"fps,omitempty"`
	// TCPPPS is the TCP packets per second.
	TCPPPS uint64 `yaml:"tcp_pps,omitempty"`
	// UDPPPS is the UDP packets per second.
	UDPPPS uint64 `yaml:"udp_pps,omitempty"`
	// ICMPPPS is the ICMP (and ICMPv6) packets per second.
	ICMPPPS uint64 `yaml:"icmp_pps,omitempty"`
	// SYNPPS is the TCP SYN (without ACK) packets per second.
	SYNPPS uint64 `yaml:"syn_pps,omitempty"`
	// FragPPS is the IP fragment packets per second.
	FragPPS uint64 `yaml:"frag_pps,omitempty"`
	// TCPMbps is the TCP megabits per second.
	TCPMbps uint64 `yaml:"tcp_mbps,omitempty"`
	// UDPMbps is the UDP megabits per second.
	UDPMbps uint64 `yaml:"udp_mbps,omitempty"`
	// ICMPMbps is the ICMP (and ICMPv6) megabits per second.
	ICMPMbps uint64 `yaml:"icmp_mbps,omitempty"`
	// SYNMbps is the TCP SYN (without ACK) megabits per second.
	SYNMbps uint64 `yaml:"syn_mbps,omitempty"`
	// FragMbps is the IP fragment megabits per second.
	FragMbps uint64 `yaml:"frag_mbps,omitempty"`
}

// Rules configures the operator's rule directories, used with the
// built-in rules shipped in the binary.
type Rules struct {
	// Dirs are directories of rule files (*.yaml). Their rules are tried
	// before the built-in ones and may disable built-ins by name. The daemon
	// reloads them when a file changes, on SIGHUP, and keeps the running set
	// when the new one has an error.
	Dirs []string `yaml:"dirs"`
	// ShadowDirs are the directories of a shadow rule set, used with the
	// built-in rules like Dirs: every attack is also classified with it
	// and followed on its ladders against a mitigation manager that
	// announces nothing. Its verdicts and would-be mitigations are
	// recorded (the attack's shadow field, kapkan_shadow_* metrics) and
	// never acted on. Empty: no shadow set. Reloaded like Dirs.
	ShadowDirs []string `yaml:"shadow_dirs"`
	// PollInterval is how often the directories are checked for changes.
	PollInterval Duration `yaml:"poll_interval"`
}

// API configures the HTTP server of /metrics, /healthz, /readyz and the
// REST API under /api/v1 (docs/70-api.md), and who may use it.
type API struct {
	// Listen is the TCP address the HTTP server listens on, as host:port.
	Listen string `yaml:"listen"`
	// OpenRead lets requests without a token read (GET routes and
	// /metrics). Writes (ban, unban, reloads) always need an operate
	// token; /healthz, /readyz and the OpenAPI document are always open.
	OpenRead bool `yaml:"open_read"`
	// Tokens are the bearer tokens the API accepts. The secret itself is
	// never in this file: it is read at start from TokenFile or TokenEnv.
	Tokens []APIToken `yaml:"tokens"`
}

// Token scopes: operate implies read.
const (
	ScopeRead    = "read"
	ScopeOperate = "operate"
)

// APIToken is one bearer token of the API.
type APIToken struct {
	// Name identifies the token in logs (never the token itself).
	Name string `yaml:"name"`
	// Scope is read (GET routes) or operate (also ban, unban, reloads).
	Scope string `yaml:"scope"`
	// TokenFile is a file holding the token (surrounding white space is
	// trimmed). Exactly one of TokenFile and TokenEnv is set.
	TokenFile string `yaml:"token_file,omitempty" secret:"ref"`
	// TokenEnv is an environment variable holding the token.
	TokenEnv string `yaml:"token_env,omitempty" secret:"ref"`
}

// Mitigation configures the safety limits every mitigation passes and the
// BGP speaker that announces what passes them.
type Mitigation struct {
	// Allowlist are prefixes never mitigated, even inside a hostgroup: the
	// operator's own infrastructure, resolvers, peering LANs.
	Allowlist []netip.Prefix `yaml:"allowlist"`
	// MaxActiveBlackholes caps the blackholes in force at once; a request
	// over the cap is refused and reported.
	MaxActiveBlackholes int `yaml:"max_active_blackholes"`
	// MaxActiveFlowSpec caps the FlowSpec rules in force at once.
	MaxActiveFlowSpec int `yaml:"max_active_flowspec"`
	// MaxNewPerMinute caps the new actions over any 60 seconds.
	MaxNewPerMinute int `yaml:"max_new_per_minute"`
	// TTL is how long an action stays at least; it is withdrawn only once
	// its TTL has passed and its attack has ended.
	TTL Duration `yaml:"ttl"`
	// MaxTTL bounds every TTL: requested ones and those lengthened by flap
	// damping.
	MaxTTL Duration `yaml:"max_ttl"`
	// FlapWindow is the penalty window: a target mitigated again within it
	// after its last action ended gets its TTL multiplied by FlapMultiplier
	// for each return, up to MaxTTL.
	FlapWindow     Duration `yaml:"flap_window"`
	FlapMultiplier uint32   `yaml:"flap_multiplier"`
	// StateFile keeps the actions in force across restarts: after a restart
	// they are announced again with the TTL they had left. An empty string
	// keeps the state in memory only.
	StateFile string `yaml:"state_file"`
	// BGP is the embedded BGP speaker.
	BGP BGP `yaml:"bgp"`
}

// BGP configures the embedded BGP speaker. With no peers it does not run.
type BGP struct {
	// ASN is Kapkan's autonomous system number.
	ASN uint32 `yaml:"asn"`
	// RouterID is the BGP identifier, an IPv4 address.
	RouterID netip.Addr `yaml:"router_id"`
	// ListenPort is the TCP port for incoming BGP sessions; -1 (the default)
	// opens none: Kapkan connects to its peers.
	ListenPort int32 `yaml:"listen_port"`
	// NextHopIPv4 and NextHopIPv6 are the next hops of blackhole routes, to
	// be routed to a discard interface by the routers (RFC 5635; the
	// defaults are from RFC 5737 and RFC 6666).
	NextHopIPv4 netip.Addr `yaml:"next_hop_ipv4"`
	NextHopIPv6 netip.Addr `yaml:"next_hop_ipv6"`
	// Communities are attached to blackhole routes: ASN:VALUE pairs or the
	// names blackhole (65535:666, RFC 7999), no-export and no-advertise.
	Communities []string `yaml:"communities"`
	// LocalPref is the LOCAL_PREF of blackhole routes, sent to iBGP peers
	// only; 0 leaves it out.
	LocalPref uint32 `yaml:"local_pref"`
	// Peers are the routers Kapkan announces to.
	Peers []Peer `yaml:"peers"`
}

// Peer is one BGP neighbour.
type Peer struct {
	// Address is the neighbour's address (IPv4 or IPv6).
	Address netip.Addr `yaml:"address"`
	// Port is the neighbour's BGP port.
	Port uint16 `yaml:"port"`
	// ASN is the neighbour's autonomous system; equal to bgp.asn makes the
	// session iBGP.
	ASN uint32 `yaml:"asn"`
	// Families are the address families of the session: ipv4-unicast,
	// ipv6-unicast (blackholes), ipv4-flowspec, ipv6-flowspec.
	Families []string `yaml:"families"`
	// Communities, when set, replace bgp.communities on the blackhole
	// routes sent to this neighbour (many upstreams want their own
	// ASN:666).
	Communities []string `yaml:"communities"`
	// NextHopIPv4 and NextHopIPv6, when set, replace the blackhole next
	// hops for this neighbour.
	NextHopIPv4 netip.Addr `yaml:"next_hop_ipv4"`
	NextHopIPv6 netip.Addr `yaml:"next_hop_ipv6"`
	// LocalPref, when set, replaces bgp.local_pref for this neighbour.
	LocalPref uint32 `yaml:"local_pref"`
	// PasswordFile names a file holding the session's TCP-MD5 password
	// (RFC 2385), read at start and on reload; the password is never
	// written in this file, logged or shown.
	PasswordFile string `yaml:"password_file,omitempty" secret:"ref"`
	// GracefulRestart offers graceful restart (RFC 4724): the router keeps
	// Kapkan's routes, as stale, while Kapkan restarts.
	GracefulRestart bool `yaml:"graceful_restart"`
	// GracefulRestartTime is how long the router keeps them (1s to 4095s).
	GracefulRestartTime Duration `yaml:"graceful_restart_time"`
	// LongLivedStaleTime, when not 0, offers long-lived graceful restart
	// (RFC 9494) too: a router that supports it keeps the routes that much
	// longer once graceful_restart_time has passed.
	LongLivedStaleTime Duration `yaml:"long_lived_stale_time"`
}

// Notifier is one notification channel: a Telegram chat, a Slack incoming
// webhook, an email, a generic webhook or a program to run. The keys below
// type apply to some types only; a key of another type is an error.
// Secrets (tokens, passwords, signing keys, Slack webhook URLs) are read
// from a file or an environment variable, never written in this file.
type Notifier struct {
	// Name identifies the channel in logs and metric labels: lower-case
	// letters, digits, "_" and "-".
	Name string `yaml:"name"`
	// Type is telegram, slack, email, webhook or exec.
	Type string `yaml:"type"`
	// Events are what the channel is told: attack_started,
	// attack_escalated, attack_ended, mitigation (announced, withdrawn,
	// refused, failed), or one mitigation kind alone.
	Events []string `yaml:"events"`
	// DryRun also sends the mitigations taken in dry-run, marked as such.
	DryRun bool `yaml:"dry_run"`
	// Timeout bounds one delivery attempt.
	Timeout Duration `yaml:"timeout"`
	// RatePerMinute bounds the messages sent a minute (after a burst of up
	// to 5); 0 sends without limit. Messages over it wait in the queue.
	RatePerMinute int `yaml:"rate_per_minute"`
	// QueueSize is how many messages may wait for the channel; more are
	// dropped and counted.
	QueueSize int `yaml:"queue_size"`
	// Retries is how many times a delivery that failed for a reason that
	// may pass (a server error, a timeout, HTTP 429) is tried again, with a
	// backoff doubling from 1s.
	Retries int `yaml:"retries"`

	// BotTokenFile and BotTokenEnv hold the Telegram bot token (telegram).
	BotTokenFile string `yaml:"bot_token_file,omitempty" secret:"ref"`
	BotTokenEnv  string `yaml:"bot_token_env,omitempty" secret:"ref"`
	// BotToken is refused: a token is never written in the config.
	BotToken string `yaml:"bot_token,omitempty" secret:"redact"`
	// ChatID is the Telegram chat the bot writes to (telegram).
	ChatID string `yaml:"chat_id,omitempty"`
	// APIURL replaces the Telegram Bot API's address (telegram; for a
	// local Bot API server or tests).
	APIURL string `yaml:"api_url,omitempty" secret:"redact"`

	// URL, URLFile and URLEnv give the address to POST to (slack,
	// webhook); a Slack webhook URL is a secret, better kept in a file.
	URL     string `yaml:"url,omitempty" secret:"redact"`
	URLFile string `yaml:"url_file,omitempty" secret:"ref"`
	URLEnv  string `yaml:"url_env,omitempty" secret:"ref"`
	// SecretFile and SecretEnv hold the key that signs the body (webhook):
	// X-Kapkan-Signature: sha256=<hex HMAC-SHA256>.
	SecretFile string `yaml:"secret_file,omitempty" secret:"ref"`
	SecretEnv  string `yaml:"secret_env,omitempty" secret:"ref"`
	// Secret is refused: a key is never written in the config.
	Secret string `yaml:"secret,omitempty" secret:"redact"`

	// SMTP is the mail server, host:port (email).
	SMTP string `yaml:"smtp,omitempty"`
	// From and To are the sender and recipients (email).
	From string   `yaml:"from,omitempty"`
	To   []string `yaml:"to,omitempty"`
	// Username logs in with AUTH PLAIN, with the password of PasswordFile
	// or PasswordEnv (email).
	Username     string `yaml:"username,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty" secret:"ref"`
	PasswordEnv  string `yaml:"password_env,omitempty" secret:"ref"`
	// Password is refused: a password is never written in the config.
	Password string `yaml:"password,omitempty" secret:"redact"`
	// StartTLS requires STARTTLS before anything is sent (email). Without
	// it, authentication is refused unless the server is on loopback.
	StartTLS bool `yaml:"starttls"`
	// CAFile holds PEM certificates that verify the mail server instead of
	// the system's (email).
	CAFile string `yaml:"ca_file,omitempty"`

	// Command is the absolute path of the program to run, never through a
	// shell (exec).
	Command string `yaml:"command,omitempty"`
	// Mode is fastnetmon (FastNetMon's notify-script arguments: IP
	// DIRECTION PPS ban|unban, details on stdin) or json (the event as
	// JSON on stdin) (exec).
	Mode string `yaml:"mode,omitempty"`
}

// BGP address families a peer may carry.
var BGPFamilies = []string{"ipv4-unicast", "ipv6-unicast", "ipv4-flowspec", "ipv6-flowspec"}

// Store configures the history store.
type Store struct {
	// Path is the directory of the embedded store (its file is
	// history.db inside it); "" turns the history off.
	Path string `yaml:"path"`
	// Retention is how long history is kept; 0 keeps it all.
	Retention Duration `yaml:"retention"`
	// MaxBytes bounds the bytes the embedded store uses: the oldest
	// history is dropped until it is under; 0 for no bound.
	MaxBytes int64 `yaml:"max_bytes"`
	// ClickHouse, when its dsn is set, keeps the history in ClickHouse.
	ClickHouse ClickHouse `yaml:"clickhouse"`
}

// Incidents configures the flight recorder. Its memory is bounded by
// (listener workers × RingBytes) + (Keep × MaxBytes).
type Incidents struct {
	// RingBytes is the ring of raw datagrams each listener worker keeps
	// (the telemetry before detection comes from it); 0 turns the flight
	// recorder off.
	RingBytes int `yaml:"ring_bytes"`
	// Before is how much telemetry before detection an incident keeps, as
	// far as the rings still hold it.
	Before Duration `yaml:"before"`
	// After is how long after detection an incident is recorded.
	After Duration `yaml:"after"`
	// MaxBytes bounds the datagrams kept per incident.
	MaxBytes int `yaml:"max_bytes"`
	// Keep is how many incidents are held; the oldest finished one makes
	// room for a new one.
	Keep int `yaml:"keep"`
}

// ClickHouse configures the ClickHouse history store.
type ClickHouse struct {
	// DSN is the server and database, as clickhouse://host:port/database;
	// "" for none.
	DSN string `yaml:"dsn" secret:"redact"`
}

// Duration is a time.Duration written in YAML as a string such as "5s" or
// "1m30s" (the syntax of time.ParseDuration), with days added: "90d",
// "1d12h". It is written back in hours ("2160h0m0s").
type Duration struct {
	time.Duration
}

// UnmarshalYAML decodes a duration string. It lets a plain yaml.v3 decode of
// the structs agree with Parse.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalYAML encodes the duration as a string.
func (d Duration) MarshalYAML() (any, error) {
	return d.String(), nil
}

func parseDuration(n *yaml.Node) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return 0, fmt.Errorf("%s is not a duration (want a string like \"5s\")", describe(n))
	}
	v, err := ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return 0, fmt.Errorf("%s is not a duration (want a number with a unit, like \"5s\", \"1m30s\" or \"90d\")", describe(n))
	}
	return v, nil
}

// ParseDuration is time.ParseDuration with a leading whole number of days
// allowed: "90d", "1d12h", "-2d".
func ParseDuration(s string) (time.Duration, error) {
	i := strings.IndexByte(s, 'd')
	if i < 0 {
		return time.ParseDuration(s)
	}
	num, rest := s[:i], s[i+1:]
	neg := strings.HasPrefix(num, "-")
	num = strings.TrimPrefix(strings.TrimPrefix(num, "-"), "+")
	days, err := strconv.ParseUint(num, 10, 32)
	if err != nil || num == "" || days > 106_000 { // time.Duration tops out at about 292 years
		return 0, fmt.Errorf("time: invalid duration %q", s)
	}
	d := time.Duration(days) * 24 * time.Hour
	if rest != "" {
		if rest[0] == '-' || rest[0] == '+' {
			return 0, fmt.Errorf("time: invalid duration %q", s)
		}
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("time: invalid duration %q", s)
		}
		d += r
	}
	if neg {
		d = -d
	}
	return d, nil
}

// Dump renders the effective configuration, defaults included, as YAML.
// Parsing the output gives the same configuration back.
func (c *Config) Dump() ([]byte, error) {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return []byte(b.String()), nil
}

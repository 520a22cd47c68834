package check

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// checkKRaft checks what Kafka itself checks when a KRaft node formats its
// storage and starts, so a compose file that no broker would start on fails
// `make lint`: the cluster id (a base64url-encoded UUID, the same on every
// node), unique node ids, a controller quorum whose voters are these nodes
// on their controller listeners, listener names that the security protocol
// map knows, no controller listener among the advertised ones, and the data
// directory on a volume.
func (c *checker) checkKRaft(rel string, brokers map[string]types.ServiceConfig) {
	ids := map[string]string{} // node id → service
	hosts := map[string]types.ServiceConfig{}
	clusterIDs := map[string]bool{}
	for _, name := range slices.Sorted(mapKeys(brokers)) {
		s := brokers[name]
		obj := "services." + name
		host := s.Hostname
		if host == "" {
			host = name
		}
		hosts[host] = s
		cid := envOf(s, "CLUSTER_ID")
		clusterIDs[cid] = true
		if err := checkClusterID(cid); err != nil {
			c.add(rel, obj, "environment.CLUSTER_ID", "%v", err)
		}
		id := envOf(s, "KAFKA_NODE_ID")
		if _, err := strconv.Atoi(id); err != nil {
			c.add(rel, obj, "environment.KAFKA_NODE_ID", "%q is not a number", id)
		} else if other, dup := ids[id]; dup {
			c.add(rel, obj, "environment.KAFKA_NODE_ID", "%s is also %s's", id, other)
		}
		ids[id] = name
		c.checkListeners(rel, obj, s)
		dir := envOf(s, "KAFKA_LOG_DIRS")
		if dir == "" {
			c.add(rel, obj, "environment.KAFKA_LOG_DIRS", "unset: the image's default is under /tmp, lost with the container")
		} else {
			c.requireVolume(rel, obj, s, dir)
		}
	}
	if len(clusterIDs) > 1 {
		c.add(rel, "services", "environment.CLUSTER_ID", "the brokers have %d different cluster ids; every node of a KRaft quorum is formatted with the same one", len(clusterIDs))
	}
	// Every broker must list the same voters, and each voter must be one of
	// the brokers, reachable on its controller listener's port.
	for _, name := range slices.Sorted(mapKeys(brokers)) {
		s := brokers[name]
		obj := "services." + name
		voters := envOf(s, "KAFKA_CONTROLLER_QUORUM_VOTERS")
		seen := map[string]bool{}
		for _, v := range strings.Split(voters, ",") {
			id, addr, ok := strings.Cut(strings.TrimSpace(v), "@")
			host, port, ok2 := strings.Cut(addr, ":")
			if !ok || !ok2 {
				c.add(rel, obj, "environment.KAFKA_CONTROLLER_QUORUM_VOTERS", "%q: want id@host:port", v)
				continue
			}
			seen[id] = true
			peer, known := hosts[host]
			switch {
			case !known:
				c.add(rel, obj, "environment.KAFKA_CONTROLLER_QUORUM_VOTERS", "voter %s: host %q is none of the brokers", id, host)
			case envOf(peer, "KAFKA_NODE_ID") != id:
				c.add(rel, obj, "environment.KAFKA_CONTROLLER_QUORUM_VOTERS", "voter %s is host %q, whose KAFKA_NODE_ID is %q", id, host, envOf(peer, "KAFKA_NODE_ID"))
			case !listensOn(peer, envOf(peer, "KAFKA_CONTROLLER_LISTENER_NAMES"), port):
				c.add(rel, obj, "environment.KAFKA_CONTROLLER_QUORUM_VOTERS", "voter %s: %s has no controller listener on port %s", id, host, port)
			}
		}
		for id := range ids {
			if !seen[id] {
				c.add(rel, obj, "environment.KAFKA_CONTROLLER_QUORUM_VOTERS", "node %s (a controller) is not a voter", id)
			}
		}
	}
}

// checkClusterID is Kafka's rule for a cluster id: a UUID in base64url
// without padding (22 characters), as `kafka-storage random-uuid` prints.
func checkClusterID(id string) error {
	if id == "" {
		return fmt.Errorf("unset: kafka-storage format needs it")
	}
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) != 16 {
		return fmt.Errorf("%q is not a base64url-encoded UUID (22 characters, as `kafka-storage random-uuid` prints); kafka-storage format refuses it", id)
	}
	return nil
}

// listeners parses "NAME://host:port,..." into name → port.
func listeners(v string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(v, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(l), "://")
		if !ok {
			continue
		}
		_, port, _ := strings.Cut(addr, ":")
		out[name] = port
	}
	return out
}

func listensOn(s types.ServiceConfig, names, port string) bool {
	ls := listeners(envOf(s, "KAFKA_LISTENERS"))
	for _, n := range strings.Split(names, ",") {
		if p, ok := ls[strings.TrimSpace(n)]; ok && p == port {
			return true
		}
	}
	return false
}

func (c *checker) checkListeners(rel, obj string, s types.ServiceConfig) {
	protocols := map[string]bool{}
	for _, pair := range strings.Split(envOf(s, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"), ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(pair), ":")
		protocols[name] = true
	}
	ls := listeners(envOf(s, "KAFKA_LISTENERS"))
	adv := listeners(envOf(s, "KAFKA_ADVERTISED_LISTENERS"))
	for _, set := range []struct {
		field string
		names map[string]string
	}{{"KAFKA_LISTENERS", ls}, {"KAFKA_ADVERTISED_LISTENERS", adv}} {
		for _, n := range slices.Sorted(mapKeys(set.names)) {
			if !protocols[n] {
				c.add(rel, obj, "environment."+set.field, "listener %s is not in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", n)
			}
			if _, ok := ls[n]; !ok && set.field == "KAFKA_ADVERTISED_LISTENERS" {
				c.add(rel, obj, "environment.KAFKA_ADVERTISED_LISTENERS", "listener %s is advertised but not in KAFKA_LISTENERS", n)
			}
		}
	}
	for _, n := range strings.Split(envOf(s, "KAFKA_CONTROLLER_LISTENER_NAMES"), ",") {
		n = strings.TrimSpace(n)
		if _, ok := ls[n]; !ok {
			c.add(rel, obj, "environment.KAFKA_CONTROLLER_LISTENER_NAMES", "%s is not in KAFKA_LISTENERS", n)
		}
		if _, ok := adv[n]; ok {
			c.add(rel, obj, "environment.KAFKA_ADVERTISED_LISTENERS", "must not advertise the controller listener %s (a broker-and-controller node refuses to start)", n)
		}
	}
	if n := envOf(s, "KAFKA_INTER_BROKER_LISTENER_NAME"); n != "" {
		if _, ok := adv[n]; !ok {
			c.add(rel, obj, "environment.KAFKA_INTER_BROKER_LISTENER_NAME", "%s is not advertised", n)
		}
	}
}

// requireVolume: dir (a stateful service's data) must be on a named volume,
// or it is lost when the container is recreated.
func (c *checker) requireVolume(rel, obj string, s types.ServiceConfig, dir string) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == dir {
			return
		}
	}
	c.add(rel, obj, "volumes", "no named volume at %s: its data is lost when the container is recreated", dir)
}

package broker

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/broker/storage"
)

const offsetsTopic = "__consumer_offsets"

// topic is a named set of partitions with its config overrides. Its fields other
// than partitions and configs never change; partitions and configs change under
// Broker.mu.
type topic struct {
	name       string
	id         [16]byte
	internal   bool
	configs    map[string]string // overrides only; defaults come from the broker config
	partitions []*partition
}

// partition is one partition of a topic, led by this broker.
type partition struct {
	topic       *topic
	index       int32
	log         *storage.Log
	leaderEpoch int32

	mu      sync.Mutex
	waiters []chan struct{}
}

// notifyAppend wakes fetches waiting for data on this partition.
func (p *partition) notifyAppend() {
	p.mu.Lock()
	ws := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, w := range ws {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// addWaiter registers ch to be signalled on the next append.
func (p *partition) addWaiter(ch chan struct{}) {
	p.mu.Lock()
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
}

// removeWaiter drops ch if it is still registered.
func (p *partition) removeWaiter(ch chan struct{}) {
	p.mu.Lock()
	for i, w := range p.waiters {
		if w == ch {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
}

// metaStore persists topic metadata in one JSON file, replaced atomically.
type metaStore struct {
	path string
}

type metaFile struct {
	Topics []metaTopic `json:"topics"`
}

type metaTopic struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

func openMetaStore(dir string) (*metaStore, error) {
	return &metaStore{path: filepath.Join(dir, "topics.json")}, nil
}

func (m *metaStore) load() (metaFile, error) {
	var f metaFile
	raw, err := os.ReadFile(m.path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return f, fmt.Errorf("%s: %w", m.path, err)
	}
	return f, nil
}

// save writes the topic set; callers hold Broker.mu.
func (m *metaStore) save(topics map[string]*topic) error {
	var f metaFile
	for _, t := range topics {
		f.Topics = append(f.Topics, metaTopic{Name: t.name, ID: t.id, Partitions: int32(len(t.partitions)), Configs: t.configs})
	}
	sort.Slice(f.Topics, func(i, j int) bool { return f.Topics[i].Name < f.Topics[j].Name })
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(m.path, raw)
}

// writeFileAtomic replaces path with data so that a crash leaves either the old or
// the new content.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (b *Broker) loadTopics() error {
	f, err := b.meta.load()
	if err != nil {
		return err
	}
	for _, mt := range f.Topics {
		t := &topic{name: mt.Name, id: mt.ID, internal: mt.Name == offsetsTopic, configs: mt.Configs}
		if t.configs == nil {
			t.configs = map[string]string{}
		}
		if err := b.openPartitions(t, mt.Partitions); err != nil {
			return err
		}
		b.topics[t.name] = t
		b.topicIDs[t.id] = t
	}
	return nil
}

// openPartitions opens (creating if needed) partitions len(t.partitions)..n-1.
func (b *Broker) openPartitions(t *topic, n int32) error {
	scfg, err := b.storageConfig(t.configs)
	if err != nil {
		return fmt.Errorf("topic %s: %w", t.name, err)
	}
	for i := int32(len(t.partitions)); i < n; i++ {
		dir := filepath.Join(b.cfg.DataDir, fmt.Sprintf("%s-%d", t.name, i))
		l, err := storage.Open(dir, scfg, b.logger.With("topic", t.name, "partition", i))
		if err != nil {
			return fmt.Errorf("opening %s-%d: %w", t.name, i, err)
		}
		t.partitions = append(t.partitions, &partition{topic: t, index: i, log: l, leaderEpoch: 0})
	}
	return nil
}

func (b *Broker) ensureOffsetsTopic() error {
	if _, ok := b.topics[offsetsTopic]; ok {
		return nil
	}
	_, err := b.createTopic(offsetsTopic, b.cfg.OffsetsTopicNumPartitions, map[string]string{"cleanup.policy": "compact"})
	return err
}

var legalTopicChars = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// validTopicName applies Kafka's topic name rules.
func validTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is illegal", name)
	case len(name) > 249:
		return fmt.Errorf("topic name is longer than 249 characters")
	case !legalTopicChars.MatchString(name):
		return fmt.Errorf("topic name %q contains characters other than ASCII alphanumerics, '.', '_' and '-'", name)
	}
	return nil
}

// createTopic creates and persists a topic. It returns a Kafka error for requests
// that name an existing topic or bad settings.
func (b *Broker) createTopic(name string, partitions int32, configs map[string]string) (*topic, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.createTopicLocked(name, partitions, configs)
}

func (b *Broker) createTopicLocked(name string, partitions int32, configs map[string]string) (*topic, error) {
	if err := validTopicName(name); err != nil {
		return nil, kafkaErr(kerr.InvalidTopicException, err.Error())
	}
	if _, ok := b.topics[name]; ok {
		return nil, kafkaErr(kerr.TopicAlreadyExists, fmt.Sprintf("topic %q already exists", name))
	}
	if partitions <= 0 {
		return nil, kafkaErr(kerr.InvalidPartitions, "partition count must be positive")
	}
	if configs == nil {
		configs = map[string]string{}
	}
	if err := validateTopicConfigs(configs); err != nil {
		return nil, err
	}
	t := &topic{name: name, internal: name == offsetsTopic, configs: configs}
	if _, err := rand.Read(t.id[:]); err != nil {
		return nil, err
	}
	if err := b.openPartitions(t, partitions); err != nil {
		for _, p := range t.partitions {
			p.log.Delete()
		}
		return nil, err
	}
	b.topics[name] = t
	b.topicIDs[t.id] = t
	if err := b.meta.save(b.topics); err != nil {
		delete(b.topics, name)
		delete(b.topicIDs, t.id)
		for _, p := range t.partitions {
			p.log.Delete()
		}
		return nil, err
	}
	b.logger.Info("topic created", "topic", name, "partitions", partitions)
	return t, nil
}

// deleteTopic removes a topic and its data.
func (b *Broker) deleteTopic(t *topic) error {
	b.mu.Lock()
	if b.topics[t.name] != t {
		b.mu.Unlock()
		return kafkaErr(kerr.UnknownTopicOrPartition, "")
	}
	delete(b.topics, t.name)
	delete(b.topicIDs, t.id)
	err := b.meta.save(b.topics)
	b.mu.Unlock()
	if err != nil {
		return err
	}
	for _, p := range t.partitions {
		if err := p.log.Delete(); err != nil {
			b.logger.Warn("deleting partition data", "topic", t.name, "partition", p.index, "err", err)
		}
		p.notifyAppend()
	}
	b.logger.Info("topic deleted", "topic", t.name)
	return nil
}

// topicByName returns the topic or nil.
func (b *Broker) topicByName(name string) *topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.topics[name]
}

// topicByID returns the topic or nil.
func (b *Broker) topicByID(id [16]byte) *topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.topicIDs[id]
}

// partitionOf returns the partition or nil.
func (b *Broker) partitionOf(name string, index int32) *partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.topics[name]
	if t == nil || index < 0 || int(index) >= len(t.partitions) {
		return nil
	}
	return t.partitions[index]
}

// partitionByID is partitionOf for requests that name topics by ID.
func (b *Broker) partitionByID(id [16]byte, index int32) *partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.topicIDs[id]
	if t == nil || index < 0 || int(index) >= len(t.partitions) {
		return nil
	}
	return t.partitions[index]
}

// sortedTopics returns all topics ordered by name.
func (b *Broker) sortedTopics() []*topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	ts := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	return ts
}

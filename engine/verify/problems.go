package verify

import (
	"slices"
	"strings"
	"sync"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
)

// Problem kinds (docs/verify.md, "Problems"), in the order a report lists them.
const (
	KindIdentity     = "identity"      // a cluster's identity object is missing or damaged
	KindManifest     = "manifest"      // a backup manifest cannot be read
	KindIndex        = "index"         // an index object cannot be read
	KindMissingChunk = "missing-chunk" // a chunk a backup needs is kept nowhere
	KindChunk        = "chunk"         // a whole chunk object is damaged
	KindPack         = "pack"          // a pack cannot be read at all
	KindPackEntry    = "pack-entry"    // an entry of a pack is damaged
	KindDelta        = "delta"         // a page delta does not rebuild the chunk its id names
	KindMissingWAL   = "missing-wal"   // WAL a backup needs to reach consistency is nowhere
	KindWALGap       = "wal-gap"       // segments are missing inside a timeline of the archive
	KindWALHistory   = "wal-history"   // a timeline history file cannot be used
	KindWAL          = "wal"           // an archived WAL file is damaged
	KindWALSummary   = "wal-summary"   // a WAL summary is damaged
	KindWALPartial   = "wal-partial"   // a streamed partial segment is damaged
	KindPin          = "pin"           // a pin is damaged
	KindLedger       = "ledger"        // a verify ledger object is damaged (its times are lost)
)

var kindOrder = []string{KindIdentity, KindManifest, KindIndex, KindMissingChunk, KindChunk, KindPack, KindPackEntry,
	KindDelta, KindMissingWAL, KindWALGap, KindWALHistory, KindWAL, KindWALSummary, KindWALPartial, KindPin, KindLedger}

// problems collects what a run finds, from several workers.
type problems struct {
	mu  sync.Mutex
	all []*problem
	// byPiece and byChunk are the problems whose backups are learned by walking what every
	// backup needs (attribute): a damaged piece, a chunk kept nowhere.
	byPiece map[contents.Key]*problem
	byChunk map[repo.Hash]*problem
}

type problem struct {
	repo.VerifyProblem
	backups map[string]bool
}

func newProblems() *problems {
	return &problems{byPiece: map[contents.Key]*problem{}, byChunk: map[repo.Hash]*problem{}}
}

// add records a problem; its Backups are those it names already.
func (p *problems) add(vp repo.VerifyProblem) *problem {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addLocked(vp)
}

func (p *problems) addLocked(vp repo.VerifyProblem) *problem {
	pr := &problem{VerifyProblem: vp, backups: map[string]bool{}}
	for _, b := range vp.Backups {
		pr.backups[b] = true
	}
	p.all = append(p.all, pr)
	return pr
}

// addPieces records a problem about stored pieces (one entry, or every entry of a pack);
// the backups that need any of them are added by attribute.
func (p *problems) addPieces(keys []contents.Key, vp repo.VerifyProblem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.addLocked(vp)
	for _, k := range keys {
		if _, ok := p.byPiece[k]; !ok {
			p.byPiece[k] = pr
		}
	}
}

// addMissing records a chunk kept nowhere, once.
func (p *problems) addMissing(id repo.Hash, vp repo.VerifyProblem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.byChunk[id]; !ok {
		p.byChunk[id] = p.addLocked(vp)
	}
}

// needsAttribution tells whether some problem's backups are still to be learned.
func (p *problems) needsAttribution() bool { return len(p.byPiece)+len(p.byChunk) > 0 }

// list returns the problems in report order: by kind, then object.
func (p *problems) list() []repo.VerifyProblem {
	out := make([]repo.VerifyProblem, 0, len(p.all))
	for _, pr := range p.all {
		vp := pr.VerifyProblem
		vp.Backups = make([]string, 0, len(pr.backups))
		for b := range pr.backups {
			vp.Backups = append(vp.Backups, b)
		}
		slices.Sort(vp.Backups)
		out = append(out, vp)
	}
	slices.SortStableFunc(out, func(a, b repo.VerifyProblem) int {
		if c := slices.Index(kindOrder, a.Kind) - slices.Index(kindOrder, b.Kind); c != 0 {
			return c
		}
		if c := strings.Compare(a.Object, b.Object); c != 0 {
			return c
		}
		return strings.Compare(a.Chunk, b.Chunk)
	})
	return out
}

// backupName is how a problem names a backup: cluster and ID, unambiguous across clusters.
func backupName(cluster, id string) string { return cluster + "/" + id }

package policy

import "github.com/hashicorp/hcl/v2"

// The policy language is assembled from registrations, so that each
// capability (fork storms, listeners, mail, ...) adds its blocks and steps
// in a file of its own, from an init function:
//
//	func init() { RegisterStep(StepSpec{Kind: "reap", ...}) }

// BlockDecoder decodes one top-level block into d's policy, reporting
// problems with d's helpers (Errf, Duration, ...).
type BlockDecoder func(d *Decoder, b *hcl.Block, src []byte)

type topBlock struct {
	typ    string
	labels []string
	decode BlockDecoder
}

// topBlocks in registration order: blocks decode in source order, and each
// kind's decoder runs for each of its blocks.
var topBlocks []topBlock

// RegisterBlock adds a top-level block type with the given label names.
func RegisterBlock(typ string, labels []string, decode BlockDecoder) {
	topBlocks = append(topBlocks, topBlock{typ, labels, decode})
}

// StepSpec describes a step kind of rules.
type StepSpec struct {
	Kind  StepKind
	Attrs []hcl.AttributeSchema // besides `after`, which every step takes
	// Decode fills the kind's fields of st from attrs (defaults included);
	// false when something was wrong (already reported). Nil: no attributes.
	Decode func(d *Decoder, st *Step, attrs hcl.Attributes) bool
	Last   bool // ends the subject (kill): no step may follow it
	// Filesystem marks a step that filesystem-scope rules may use (report):
	// they have no process or user to act on.
	Filesystem bool
	// Follows marks a step that tells about the steps before it (notify):
	// without `after` it runs with the step before it, and it may follow
	// a Last step.
	Follows bool
	// WholeUser marks a step that acts on the user as a whole (kill_user,
	// report for a user rule): a user rule made only of such steps needs
	// no process list, so it may be decided between samples.
	WholeUser bool
	// UserOnly marks a step that can only act on the user as a whole
	// (kill_user, stop_user, resume_user, clean_tmp): a process rule may
	// not use it, or it would run once per matching process.
	UserOnly bool
	// PerProcess names the step a process rule uses instead of a UserOnly
	// one (kill for kill_user), for the error's hint; "" when there is none.
	PerProcess StepKind
}

// stepSpecs in registration order, which is the order the README lists.
var stepSpecs []*StepSpec

// RegisterStep adds a step kind.
func RegisterStep(sp StepSpec) { stepSpecs = append(stepSpecs, &sp) }

func stepSpecOf(k StepKind) *StepSpec {
	for _, sp := range stepSpecs {
		if sp.Kind == k {
			return sp
		}
	}
	return nil
}

// Finisher runs after every file is decoded, to resolve references between
// blocks (a class named in another file). parsed is false when some file
// failed to parse, so references to what it defined cannot be checked.
type Finisher func(d *Decoder, parsed bool)

var finishers []Finisher

// RegisterFinisher adds a Finisher.
func RegisterFinisher(f Finisher) { finishers = append(finishers, f) }

// WholeUser reports whether every step of the rule acts on the user as a
// whole (see StepSpec.WholeUser).
func (r *Rule) WholeUser() bool {
	for _, st := range r.Steps {
		if sp := stepSpecOf(st.Kind); sp == nil || !sp.WholeUser {
			return false
		}
	}
	return len(r.Steps) > 0
}

// StepKinds lists the registered step kinds, for documentation.
func StepKinds() []StepKind {
	out := make([]StepKind, len(stepSpecs))
	for i, sp := range stepSpecs {
		out[i] = sp.Kind
	}
	return out
}

// StepDoc names a step kind and its attributes, for documentation.
type StepDoc struct {
	Kind  StepKind
	Attrs []string // `after` last: every step takes it
	Last  bool     // must be the last step of a rule
	// UserOnly: only in user rules (StepSpec.UserOnly).
	UserOnly bool
}

// Steps lists the step kinds in registration order,
// for the documentation generator.
func Steps() []StepDoc {
	out := make([]StepDoc, 0, len(stepSpecs))
	for _, sp := range stepSpecs {
		d := StepDoc{Kind: sp.Kind, Last: sp.Last, UserOnly: sp.UserOnly}
		for _, a := range sp.Attrs {
			d.Attrs = append(d.Attrs, a.Name)
		}
		d.Attrs = append(d.Attrs, "after")
		out = append(out, d)
	}
	return out
}

// Blocks lists the top-level block types with their label names, in
// registration order, for the documentation generator.
func Blocks() [][]string {
	var out [][]string
	for _, b := range topBlocks {
		out = append(out, append([]string{b.typ}, b.labels...))
	}
	return out
}

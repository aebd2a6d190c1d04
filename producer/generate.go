package producer

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Generator makes a realistic synthetic payment stream: many accounts with their own home country, currency,
// card, device and favourite merchants paying everyday amounts, plus a share of fraud patterns started on
// random accounts. It is deterministic for a seed.
//
// Event time models the accounts, not the sending speed: each account pays on average once per interval, so
// the stream's clock advances by interval/accounts per payment. A demo with ten thousand accounts sent at
// thousands per second therefore still looks like ordinary spending to the rules, and only the fraud patterns
// alert.
type Generator struct {
	rng      *rand.Rand
	accounts []account
	clock    time.Time
	step     time.Duration
	fraud    float64
	seq      int
	paid     []bool // by account index
	distinct int
	pending  pendingHeap
	Patterns map[string]int // fraud patterns started, by name
	// IDPrefix starts every payment id, so several streams can share accounts without their ids colliding.
	IDPrefix string
}

// account is what the generator keeps per account: indexes, not strings. A million accounts of strings held
// about 20 pointers each, and the bench's generator shares two cores with the detector it measures: marking them
// took its collector 200 ms at a time, and the detector's alerts of those moments arrived late.
type account struct {
	home      uint8     // index in homes
	merchants uint8     // how many of favourite are used
	favourite [5]uint16 // merchant numbers, see merchantIDs
}

// person is one account's payment attributes, made when the account pays.
type person struct {
	id, country, currency, card, device, ip string
	account                                 *account
}

const merchantCount = 5000

// merchantIDs names the merchants once, so payments share the strings.
var merchantIDs = func() (ids [merchantCount]string) {
	for i := range ids {
		ids[i] = fmt.Sprintf("m_%04d", i)
	}
	return ids
}()

var homes = []struct {
	country, currency string
	weight            int
}{
	{"DE", "EUR", 30}, {"FR", "EUR", 20}, {"NL", "EUR", 10}, {"ES", "EUR", 10}, {"IT", "EUR", 10},
	{"PL", "PLN", 6}, {"GB", "GBP", 8}, {"US", "USD", 6},
}

var mccs = []string{"5411", "5812", "5732", "5999", "4111", "5541", "5311", "5691", "7011", "4829"}

// NewGenerator makes that many deterministic accounts; fraud is the share of payments that start a pattern.
func NewGenerator(seed uint64, accounts int, fraud float64, start time.Time, interval time.Duration) *Generator {
	g := &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), clock: start.UTC(), fraud: fraud,
		Patterns: map[string]int{}, step: Step(accounts, interval), paid: make([]bool, accounts)}
	g.accounts = make([]account, accounts)
	for i := range g.accounts {
		a := &g.accounts[i]
		a.home = g.home()
		a.merchants = uint8(2 + g.rng.IntN(4))
		for j := range a.merchants {
			a.favourite[j] = uint16(g.rng.IntN(merchantCount))
		}
	}
	return g
}

// person makes the i-th account's attributes: "acct_%06d", "card_%06d", "dev_%06d" and "198.51.%d.%d", built
// in one string that the four share (fmt.Sprintf made this a tenth of the bench process's CPU).
func (g *Generator) person(i int) person {
	a := &g.accounts[i]
	h := homes[a.home]
	var buf [64]byte
	b := appendPadded(append(buf[:0], "acct_"...), i, 6)
	ends := [4]int{len(b)}
	b = appendPadded(append(b, "card_"...), i, 6)
	ends[1] = len(b)
	b = appendPadded(append(b, "dev_"...), i, 6)
	ends[2] = len(b)
	b = strconv.AppendInt(append(b, "198.51."...), int64(i/250%250), 10)
	b = strconv.AppendInt(append(b, '.'), int64(i%250+1), 10)
	ends[3] = len(b)
	s := string(b)
	return person{
		id: s[:ends[0]], country: h.country, currency: h.currency,
		card: s[ends[0]:ends[1]], device: s[ends[1]:ends[2]], ip: s[ends[2]:ends[3]], account: a,
	}
}

// appendPadded appends n in decimal, zero-padded to width digits, as fmt's %0*d does for n >= 0.
func appendPadded(b []byte, n, width int) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(n), 10)
	for range width - len(d) {
		b = append(b, '0')
	}
	return append(b, d...)
}

// Step is how far event time advances per payment for accounts paying once per interval on average.
func Step(accounts int, interval time.Duration) time.Duration {
	return max(interval/time.Duration(max(accounts, 1)), time.Microsecond)
}

// Customers returns the contact data of the generator's accounts, for the customers topic: an email address
// and phone number each, some with quiet hours.
func (g *Generator) Customers() []topics.Customer {
	names := []string{"Ana", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ines", "Jon"}
	locales := map[string]string{"DE": "de-DE", "FR": "fr-FR", "NL": "nl-NL", "ES": "es-ES", "IT": "it-IT", "PL": "pl-PL", "GB": "en-GB", "US": "en-US"}
	out := make([]topics.Customer, len(g.accounts))
	for i := range g.accounts {
		id := AccountID(i)
		c := topics.Customer{AccountID: id, Name: names[i%len(names)], Email: id + "@example.com",
			Phone: fmt.Sprintf("+4915%09d", i), Locale: locales[homes[g.accounts[i].home].country]}
		if i%10 == 0 {
			c.QuietHours = &topics.QuietHours{Start: "22:00", End: "07:00", TimeZone: "Europe/Berlin"}
		}
		out[i] = c
	}
	return out
}

// AccountID is the id of the generator's i-th account.
func AccountID(i int) string { return string(appendPadded([]byte("acct_"), i, 6)) }

// home draws an account's home: an index in homes.
func (g *Generator) home() uint8 {
	n := g.rng.IntN(100)
	for i, h := range homes {
		if n -= h.weight; n < 0 {
			return uint8(i)
		}
	}
	return 0
}

// Next returns the next payment in event-time order.
func (g *Generator) Next() rules.Payment {
	p, _ := g.NextLabelled()
	return p
}

// NextLabelled returns the next payment in event-time order and whether a fraud pattern made it: every payment of
// a card-testing burst, a big ticket, and the payments abroad of country hopping (its first payment, at home and
// unchanged, is the customer's own). Everything else the generator makes is legitimate.
func (g *Generator) NextLabelled() (rules.Payment, bool) {
	g.clock = g.clock.Add(g.step)
	if len(g.pending) > 0 && !g.pending[0].Timestamp.After(g.clock) {
		return heap.Pop(&g.pending).(rules.Payment), true // only patterns schedule payments
	}
	i := g.rng.IntN(len(g.accounts))
	if !g.paid[i] {
		g.paid[i] = true
		g.distinct++
	}
	a := g.person(i)
	if g.rng.Float64() < g.fraud {
		return g.startPattern(a)
	}
	return g.normal(a, g.clock), false
}

// Label is the label of a payment NextLabelled returned, for the labels topic: the generator knows the truth
// about its stream, so a backtest can measure rules against it without waiting for customers' answers.
func Label(p rules.Payment, fraud bool) topics.Label {
	v := topics.VerdictLegitimate
	if fraud {
		v = topics.VerdictFraud
	}
	return topics.Label{AccountID: p.AccountID, PaymentID: p.ID, Verdict: v, Source: "generator", At: p.Timestamp}
}

// Distinct returns how many accounts have paid so far: with accounts drawn at random, n payments over as many
// accounts reach only about 63% of them.
func (g *Generator) Distinct() int { return g.distinct }

func (g *Generator) id() string {
	g.seq++
	var buf [64]byte
	return string(appendPadded(append(append(buf[:0], g.IDPrefix...), "pay_"...), g.seq, 9))
}

// everyday amounts: log-normal around 35 units of the account's currency.
func (g *Generator) everyday() int64 {
	v := math.Exp(math.Log(35) + 0.9*g.rng.NormFloat64())
	return max(int64(v*100), 50)
}

func (g *Generator) normal(a person, at time.Time) rules.Payment {
	m := a.account.favourite[g.rng.IntN(int(a.account.merchants))]
	return rules.Payment{
		ID: g.id(), AccountID: a.id, Amount: g.everyday(), Currency: a.currency, Timestamp: at,
		MerchantID: merchantIDs[m], MerchantCategory: mccs[int(m)%len(mccs)], Country: a.country, CardID: a.card,
		DeviceID: a.device, IP: a.ip,
	}
}

// startPattern returns the first payment of a fraud pattern, whether it is fraudulent, and schedules the rest.
func (g *Generator) startPattern(a person) (rules.Payment, bool) {
	first := g.normal(a, g.clock)
	switch g.rng.IntN(3) {
	case 0: // card testing: a burst of small payments within a minute
		g.Patterns["burst"]++
		first.Amount = 100 + g.rng.Int64N(400)
		for i := 1; i < 6; i++ {
			p := g.normal(a, g.clock.Add(time.Duration(i)*10*time.Second))
			p.Amount = 100 + g.rng.Int64N(400)
			heap.Push(&g.pending, p)
		}
	case 1: // a big ticket far above the account's usual spending
		g.Patterns["big-ticket"]++
		first.Amount = (6000 + g.rng.Int64N(19000)) * 100
		first.MerchantCategory = "5944" // jewellery
	default: // country hopping: the same card in three countries within minutes
		g.Patterns["country-hopping"]++
		others := []string{"BR", "NG", "TH", "RU", "AE", "VN"}
		for i := 1; i < 3; i++ {
			p := g.normal(a, g.clock.Add(time.Duration(i)*3*time.Minute))
			p.Country = others[g.rng.IntN(len(others))]
			if p.Country == first.Country || (i == 2 && p.Country == g.pending.last(a.id)) {
				p.Country = others[(g.rng.IntN(len(others))+i)%len(others)]
			}
			p.IP = fmt.Sprintf("203.0.113.%d", g.rng.IntN(250)+1)
			heap.Push(&g.pending, p)
		}
		return first, false
	}
	return first, true
}

// pendingHeap orders scheduled pattern payments by timestamp.
type pendingHeap []rules.Payment

func (h pendingHeap) Len() int           { return len(h) }
func (h pendingHeap) Less(i, j int) bool { return h[i].Timestamp.Before(h[j].Timestamp) }
func (h pendingHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)        { *h = append(*h, x.(rules.Payment)) }
func (h *pendingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// last returns the country of the latest scheduled payment of an account, so hopping visits distinct countries.
func (h pendingHeap) last(accountID string) string {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].AccountID == accountID {
			return h[i].Country
		}
	}
	return ""
}

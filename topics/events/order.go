package events

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Limits of an Order.
const (
	// MaxOrderLines bounds Order.Lines: far above a real basket, low
	// enough that one order is one small record.
	MaxOrderLines = 100
	// MaxOrderQuantity bounds OrderLine.Quantity.
	MaxOrderQuantity = 1_000_000
	// MaxLineMinorUnits bounds quantity × unit price of one line in the
	// currency's minor units (10^15: ten trillion dollars), so sums over
	// millions of lines stay far inside an int64.
	MaxLineMinorUnits = 1_000_000_000_000_000
)

// CurrencyPattern is the shape of a currency code: ISO 4217, three
// upper-case letters.
const CurrencyPattern = `^[A-Z]{3}$`

var currencyRE = regexp.MustCompile(CurrencyPattern)

// Order is the value of orders.v1 (key: order id): one purchase the shop
// reports, the input of conversion attribution. OrderedAt is the shop's
// purchase time: attribution compares it with the click and delivery
// times, never with when the record was read, so a replay decides the
// same. Prices are decimal strings, never floats, so revenue is summed
// exactly in the currency's minor units (MinorUnits).
type Order struct {
	OrderID   string    `json:"order_id"`
	UserID    string    `json:"user_id"`
	OrderedAt time.Time `json:"ordered_at"`
	// Currency is the ISO 4217 code of every unit price of the order.
	Currency string      `json:"currency"`
	Lines    []OrderLine `json:"lines"`
	// Region is where the shop sold it, when it says (informational:
	// an attributed line counts under the region of the click or the
	// delivery that earned it).
	Region string `json:"region,omitempty"`
}

// OrderLine is one SKU of an order.
type OrderLine struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
	// UnitPrice is the price of one unit, a decimal string ("19.99") with
	// at most as many decimals as the currency has minor digits.
	UnitPrice string `json:"unit_price"`
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil.
func (o Order) Validate() error {
	p := &problems{typ: SchemaOrder}
	p.check(checkID("order_id", o.OrderID))
	p.check(checkID("user_id", o.UserID))
	if o.OrderedAt.IsZero() {
		p.add("ordered_at", "required")
	}
	curOK := false
	switch {
	case o.Currency == "":
		p.add("currency", "required")
	case !currencyRE.MatchString(o.Currency):
		p.add("currency", "must be an ISO 4217 code of three upper-case letters such as EUR, got "+quote(o.Currency))
	default:
		curOK = true
	}
	if o.Region != "" {
		p.check(checkRegion("region", o.Region))
	}
	switch {
	case o.Lines == nil:
		p.add("lines", "required")
	case len(o.Lines) == 0 || len(o.Lines) > MaxOrderLines:
		p.add("lines", "must hold 1 to "+strconv.Itoa(MaxOrderLines)+" lines, got "+strconv.Itoa(len(o.Lines)))
	}
	for i, l := range o.Lines {
		if i >= MaxOrderLines {
			break
		}
		f := "lines[" + strconv.Itoa(i) + "]"
		p.check(checkID(join(f, "sku"), l.SKU))
		checkRange(p, join(f, "quantity"), l.Quantity, 1, MaxOrderQuantity)
		priceField := join(f, "unit_price")
		switch {
		case l.UnitPrice == "":
			p.add(priceField, "required")
		case !priceRE.MatchString(l.UnitPrice):
			p.add(priceField, `must be a decimal string such as "19.99", got `+quote(l.UnitPrice))
		case curOK && l.Quantity >= 1 && l.Quantity <= MaxOrderQuantity:
			if _, err := l.MinorUnits(o.Currency); err != nil {
				p.add(priceField, err.Error())
			}
		}
	}
	return p.err()
}

// DecodeOrder decodes and validates one Order.
func DecodeOrder(data []byte) (Order, error) {
	var v Order
	err := decodeStrict(SchemaOrder, data, &v)
	return v, err
}

// CurrencyExponent is the number of minor-unit digits of an ISO 4217
// currency: 2 (cents) unless the standard says otherwise (JPY 0, KWD 3,
// CLF 4). An unlisted code has 2, as most currencies do.
func CurrencyExponent(currency string) int {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	case "CLF", "UYW":
		return 4
	}
	return 2
}

// PriceMinorUnits converts a decimal price string (PricePattern) into the
// currency's minor units exactly: "19.99" EUR is 1999, "500" JPY 500. A
// price with more decimals than the currency has minor digits is an error
// rather than rounded.
func PriceMinorUnits(price, currency string) (int64, error) {
	if !priceRE.MatchString(price) {
		return 0, &FieldError{Problem: `must be a decimal string such as "19.99", got ` + quote(price)}
	}
	exp := CurrencyExponent(currency)
	whole, frac, _ := strings.Cut(price, ".")
	frac = strings.TrimRight(frac, "0")
	if len(frac) > exp {
		return 0, &FieldError{Problem: "has " + strconv.Itoa(len(frac)) + " decimals; " + currency + " has " + strconv.Itoa(exp)}
	}
	digits := whole + frac + strings.Repeat("0", exp-len(frac))
	// At most 12 + 4 digits (PricePattern): fits an int64.
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, &FieldError{Problem: "cannot be read: " + err.Error()}
	}
	return v, nil
}

// MinorUnits is the line's revenue, quantity × unit price, in the
// currency's minor units; an error when the price has too many decimals
// for the currency or the product exceeds MaxLineMinorUnits.
func (l OrderLine) MinorUnits(currency string) (int64, error) {
	unit, err := PriceMinorUnits(l.UnitPrice, currency)
	if err != nil {
		return 0, err
	}
	if l.Quantity < 1 || l.Quantity > MaxOrderQuantity {
		return 0, &FieldError{Problem: "quantity must be between 1 and " + strconv.Itoa(MaxOrderQuantity)}
	}
	if unit > MaxLineMinorUnits/l.Quantity {
		return 0, &FieldError{Problem: "quantity × unit_price must be at most " + strconv.FormatInt(MaxLineMinorUnits, 10) + " minor units of " + currency}
	}
	return unit * l.Quantity, nil
}

package rules

import (
	_ "embed"
	"math"
	"strconv"
	"strings"
)

// countries.csv holds an approximate centre (latitude, longitude) per ISO 3166-1 country, from the npm package
// country-coords 1.0.0 (srcagency/country-latlon). A travel rule falls back to it for payments without lat/lon.
//
//go:embed countries.csv
var countriesCSV string

var centroids = func() map[string][2]float64 {
	m := map[string][2]float64{}
	for i, line := range strings.Split(strings.TrimSpace(countriesCSV), "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if i == 0 || len(f) != 3 {
			continue
		}
		lat, err1 := strconv.ParseFloat(f[1], 64)
		lon, err2 := strconv.ParseFloat(f[2], 64)
		if err1 == nil && err2 == nil {
			m[f[0]] = [2]float64{lat, lon}
		}
	}
	return m
}()

// locate returns where a payment was made: its own coordinates (exact), else its country's centre.
func locate(p *Payment) (lat, lon float64, ok bool) {
	lat, lon, ok, _ = locateExact(p)
	return lat, lon, ok
}

func locateExact(p *Payment) (lat, lon float64, ok, exact bool) {
	if p.Lat != nil && p.Lon != nil {
		return *p.Lat, *p.Lon, true, true
	}
	c, ok := centroids[p.Country]
	return c[0], c[1], ok, false
}

// centroidSlack is the least distance a travel rule needs when either place is a country's centre: neighbouring
// countries' centres lie hundreds of kilometres apart even when the border between them is a street.
const centroidSlack = 1000

// distanceKm is the great-circle distance (haversine, mean Earth radius).
func distanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

module backinstock/services/wishlist

go 1.26.8
